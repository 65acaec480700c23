"""The table of unitctl's verbs: name -> (command module, attribute, one-line help).

:class:`unitctl.cli.main.UnitctlGroup` lists the verbs from this table and
imports a verb's module only when that verb runs, so ``unitctl --help`` and
``unitctl <verb>`` load one command module, not all of them (the client, the
registry, asyncio ...). The one-line help is what ``--help`` shows;
tests/unit/test_cli_imports.py checks that each equals its command's own short
help, so the table cannot drift from the docstrings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class Verb(NamedTuple):
    """Where a verb's click command lives, and its one-line help."""

    module: str
    attribute: str
    summary: str


#: Listed by name (click sorts them), as fleetctl lists its commands.
VERBS: Mapping[str, Verb] = {
    "cat": Verb("describe", "cat", "Print the unit file stored in the registry."),
    "destroy": Verb("units", "destroy",
                    "Remove units from the registry (stopping and unloading them first)."),
    "journal": Verb("remote", "journal",
                    "Show the journal of a unit, from the machine it runs on."),
    "list-machines": Verb("lists", "list_machines", "List the live machines of the cluster."),
    "list-unit-files": Verb("lists", "list_unit_files", "List the units in the registry with "
                            "their desired and current states."),
    "list-units": Verb("lists", "list_units",
                       "List the units' systemd states as the machines report them."),
    "load": Verb("units", "load", "Submit units if needed and load them on a machine "
                 "(desired state loaded)."),
    "ssh": Verb("remote", "ssh", "Open a shell (or run COMMAND) on a machine, given by id "
                "prefix or by a unit on it."),
    "start": Verb("units", "start", "Submit and load units if needed, and start them "
                  "(desired state launched)."),
    "status": Verb("remote", "status", "Show `systemctl status -l UNIT` of the machine(s) "
                   "running each unit."),
    "stop": Verb("units", "stop",
                 "Stop units (desired state loaded); they stay loaded on their machine."),
    "submit": Verb("units", "submit",
                   "Upload unit files (or template instances) to the registry."),
    "unload": Verb("units", "unload",
                   "Stop and unload units from their machines (desired state inactive)."),
    "restart": Verb("units", "restart", "Restart units: stop then start (global units: "
                    "restarted by each machine's agent)."),
    "explain": Verb("describe", "explain", "Tell where a unit is placed, or which rule keeps "
                    "it off each machine."),
    "serve": Verb("serve", "serve",
                  "Serve fleet's v1 HTTP API and unitctl's own (see docs/api.md)."),
    "token": Verb("serve", "token", "Create, list and revoke the API's bearer tokens (needs etcd "
                  "credentials)."),
    "apply": Verb("bundle", "apply", "Create, change (and with --prune remove) units so the "
                  "cluster holds a Clusterfile."),
    "diff": Verb("bundle", "diff", "Show what apply would change (exit 1 when it would change "
                 "something, 0 when not)."),
    "rollback": Verb("bundle", "rollback",
                     "Apply a recorded revision of a bundle again, as a new revision."),
    "bundles": Verb("bundle", "bundles", "List the bundles applied, with their newest revision."),
    "history": Verb("bundle", "history", "List the kept revisions of a bundle, oldest first."),
    "template": Verb("templates", "template", "Submit or destroy a config template rendered "
                     "on the machines (docs/templates.md)."),
    "templates": Verb("templates", "templates", "List config templates and each machine's "
                      "last render (ok, check failed ...)."),
    "data": Verb("templates", "data",
                 "Set, get, list and remove the data keys templates read (<prefix>data/...)."),
    "rollout": Verb("rollout", "rollout", "Replace the instances of a template (or units) with "
                    "a new body, one batch at a time."),
    "resolve": Verb("resolve", "resolve", "Print where a service answers: machine address "
                    "and allocated host ports."),
    "volume": Verb("volume", "volume", "List volumes (local or on a shared store), or "
                   "remove a volume's record (the data stays)."),
    "generate": Verb("generate", "generate",
                     "Generate fleet service units running a container via docker-run."),
}
