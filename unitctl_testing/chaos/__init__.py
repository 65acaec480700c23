"""The chaos soak: steady CLI load + random faults on an nspawn cluster, checked from systemd.

* :mod:`~unitctl_testing.chaos.timeline`: per-machine active intervals of each unit,
  rebuilt from systemd's own timestamps (pure);
* :mod:`~unitctl_testing.chaos.monitor`: polls every machine's systemd over D-Bus;
* :mod:`~unitctl_testing.chaos.pool`: the unit pool (plain, Conflicts, MachineOf,
  slow to stop, refused by systemd);
* :mod:`~unitctl_testing.chaos.load`: the stream of starts, stops, restarts, destroys;
* :mod:`~unitctl_testing.chaos.etcd_faults` and :mod:`~unitctl_testing.chaos.injector`:
  the fault verbs the harness lacked and the random fault schedule;
* :mod:`~unitctl_testing.chaos.invariants`: the three promises, checked on the records;
* :mod:`~unitctl_testing.chaos.soak`: one run end to end, and its JSON report.
"""
