"""bin/demo: a 3-machine unitctl cluster on this host, running example units.

    bin/demo up            install what is missing, boot m1..m3, start units/demo/*
    bin/demo status        machines (ip, machine id, alive?), etcd endpoint, list-units
    bin/demo kill NAME     hard-kill a machine (its units move after the agent TTL)
    bin/demo boot NAME     boot a killed machine again
    bin/demo journal NAME [journalctl args...]   a machine's journal
    bin/demo cat NAME PATH a file in a machine (the config template's upstreams.conf)
    bin/demo dig NAME QNAME [A|SRV]  a DNS query asked from a machine (testdb.unitctl)
    bin/demo down          remove everything (idempotent)

Needs root on a Debian 12 / Ubuntu host; only python3 has to be there: ``up``
runs scripts/install-deps.sh (Debian packages, .venv) and
scripts/setup-cluster.sh (the cached nspawn rootfs) first. The machines are
real systemd machines booted by the test harness (unitctl_testing.cluster,
used here through its Python API); every machine runs unitctl-agent against an
etcd on this host. The cluster is described by a state file (default
/run/unitctl-demo/state.json) that the other sub-commands read.

bin/demo installs what is missing and runs this package (``python -m
unitctl_testing.demo``) with the python of the .venv that install-deps.sh makes,
where this checkout is installed; the unitctl client runs from that .venv too.
"""
