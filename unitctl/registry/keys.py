"""The etcd key layout, in one place (pure).

Under the prefix (default ``/unitctl/``)::

    version                      schema version ("1")
    units/<unit>                 client-owned: {"hash", "desired"}
    bodies/<sha1>                unit text, content-addressed
    bodyrefs/<sha1>/<unit>       one per unit using the body; the body is deleted
                                 when the last ref goes (fleet never did this)
    placements/<unit>            engine-owned: machine id of a non-global unit
    schedule/<machine>/<unit>    engine-owned: {"hash", "desired"}; the ONLY prefix an
                                 agent watches, so a change wakes one agent
    explain/<unit>               engine-owned: why a unit cannot be placed
    machines/<machine>           agent-owned, under the machine's lease
    states/<unit>/<machine>      agent-owned, under the reporting machine's lease
    leader                       machine id of the engine leader, under its lease
    requests/<machine>/<id>      client-owned, under the client's short lease: one
                                 request to that machine's agent (unitctl.channel);
                                 only that agent watches requests/<machine>/
    replies/<id>/<seq>           agent-written, under the request's lease: the answer,
                                 in order (seq 0 is the agent's claim, its ack)
    tokens/<sha256>              API bearer tokens, by the sha256 of the token
                                 (unitctl.registry.tokens): {"id", "role", "name", "created"}
    audit/<time-ns>-<rand>       the API's audit log, under a lease of the retention
    metadata/<machine>/<key>     machine metadata set through the API (fleet's PATCH
                                 /machines), merged over what the agent registered
    owners/<unit>                client-owned: the bundle (``unitctl apply``) owning the unit
    template-owners/<template>   client-owned: the bundle owning the config template
    bundles/<bundle>/<n>         client-owned: revision n of a bundle, JSON
                                 (unitctl.registry.revisions); the last KEEP are kept
    bundlebodies/<bundle>/<sha1> unit texts the kept revisions of a bundle name
    templates/<name>             config template resources (unitctl.templating.resource)
    template-status/<name>/<machine>  agent-written, under the machine's lease: that
                                 machine's last render of the template (plan.Status)
    data/<path>                  user data the templates read (confd's keys): raw text
    rollouts/<name>              a rolling update (unitctl.rollout): written by the client,
                                 driven by the engine leader (unitctl.engine.rollout)
    rolloutbodies/<name>/<sha1>  the target and previous bodies of that rollout (kept
                                 for a revert or an undo after the units let them go)
"""

from __future__ import annotations

from unitctl.record import Frozen, init

SCHEMA_VERSION = 1
DEFAULT_PREFIX = "/unitctl/"


def normalize_prefix(prefix: str) -> str:
    """Return ``prefix`` with exactly one leading and one trailing slash."""
    return "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"


class Keys(Frozen):
    """Builds and parses keys under one prefix."""

    __slots__ = ("prefix",)
    prefix: str

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        init(self, prefix)

    @property
    def version(self) -> str:
        return f"{self.prefix}version"

    @property
    def leader(self) -> str:
        return f"{self.prefix}leader"

    def units(self) -> str:
        return f"{self.prefix}units/"

    def unit(self, name: str) -> str:
        return f"{self.prefix}units/{name}"

    def bodies(self) -> str:
        return f"{self.prefix}bodies/"

    def body(self, sha: str) -> str:
        return f"{self.prefix}bodies/{sha}"

    def bodyrefs(self, sha: str) -> str:
        return f"{self.prefix}bodyrefs/{sha}/"

    def bodyref(self, sha: str, name: str) -> str:
        return f"{self.prefix}bodyrefs/{sha}/{name}"

    def placements(self) -> str:
        return f"{self.prefix}placements/"

    def placement(self, name: str) -> str:
        return f"{self.prefix}placements/{name}"

    def schedules(self) -> str:
        return f"{self.prefix}schedule/"

    def schedule(self, machine: str) -> str:
        return f"{self.prefix}schedule/{machine}/"

    def scheduled(self, machine: str, name: str) -> str:
        return f"{self.prefix}schedule/{machine}/{name}"

    def explanations(self) -> str:
        return f"{self.prefix}explain/"

    def explanation(self, name: str) -> str:
        return f"{self.prefix}explain/{name}"

    def machines(self) -> str:
        return f"{self.prefix}machines/"

    def machine(self, machine: str) -> str:
        return f"{self.prefix}machines/{machine}"

    def states(self) -> str:
        return f"{self.prefix}states/"

    def unit_states(self, name: str) -> str:
        """Every machine's state of one unit (the prefix a dependant's agent watches)."""
        return f"{self.prefix}states/{name}/"

    def state(self, name: str, machine: str) -> str:
        return f"{self.prefix}states/{name}/{machine}"

    def requests(self, machine: str) -> str:
        return f"{self.prefix}requests/{machine}/"

    def request(self, machine: str, request_id: str) -> str:
        return f"{self.prefix}requests/{machine}/{request_id}"

    def replies(self, request_id: str) -> str:
        return f"{self.prefix}replies/{request_id}/"

    def reply(self, request_id: str, seq: int) -> str:
        """Sequence numbers are zero-padded: the keys sort in answer order."""
        return f"{self.prefix}replies/{request_id}/{seq:010d}"

    def tokens(self) -> str:
        return f"{self.prefix}tokens/"

    def token(self, digest: str) -> str:
        return f"{self.prefix}tokens/{digest}"

    def audit(self) -> str:
        return f"{self.prefix}audit/"

    def audit_entry(self, entry_id: str) -> str:
        return f"{self.prefix}audit/{entry_id}"

    def metadata(self) -> str:
        return f"{self.prefix}metadata/"

    def machine_metadata(self, machine: str) -> str:
        return f"{self.prefix}metadata/{machine}/"

    def metadata_value(self, machine: str, key: str) -> str:
        return f"{self.prefix}metadata/{machine}/{key}"

    def owners(self) -> str:
        return f"{self.prefix}owners/"

    def owner(self, name: str) -> str:
        return f"{self.prefix}owners/{name}"

    def template_owners(self) -> str:
        return f"{self.prefix}template-owners/"

    def template_owner(self, name: str) -> str:
        return f"{self.prefix}template-owners/{name}"

    def bundles(self) -> str:
        return f"{self.prefix}bundles/"

    def bundle_revisions(self, bundle: str) -> str:
        return f"{self.prefix}bundles/{bundle}/"

    def bundle_revision(self, bundle: str, number: int) -> str:
        """Numbers are zero-padded: the keys sort in revision order."""
        return f"{self.prefix}bundles/{bundle}/{number:010d}"

    def bundle_bodies(self, bundle: str) -> str:
        return f"{self.prefix}bundlebodies/{bundle}/"

    def bundle_body(self, bundle: str, sha: str) -> str:
        return f"{self.prefix}bundlebodies/{bundle}/{sha}"

    def templates(self) -> str:
        return f"{self.prefix}templates/"

    def template(self, name: str) -> str:
        return f"{self.prefix}templates/{name}"

    def template_statuses(self, name: str = "") -> str:
        """Every machine's status of one template (``name``), or of all of them."""
        return f"{self.prefix}template-status/{name}/" if name else \
            f"{self.prefix}template-status/"

    def template_status(self, name: str, machine: str) -> str:
        return f"{self.prefix}template-status/{name}/{machine}"

    def data(self, path: str = "/") -> str:
        """The data key of ``path`` (``/hosts/zk1`` → ``<prefix>data/hosts/zk1``);
        ``/`` is the data root, ``data/``."""
        tail = path.strip("/")
        return f"{self.prefix}data/{tail}" if tail else f"{self.prefix}data/"

    def rollouts(self) -> str:
        return f"{self.prefix}rollouts/"

    def rollout(self, name: str) -> str:
        return f"{self.prefix}rollouts/{name}"

    def rollout_bodies(self, name: str) -> str:
        return f"{self.prefix}rolloutbodies/{name}/"

    def rollout_body(self, name: str, sha: str) -> str:
        return f"{self.prefix}rolloutbodies/{name}/{sha}"

    def tail(self, key: str, base: str) -> str:
        """Return ``key`` with ``base`` (a prefix built above) removed."""
        if not key.startswith(base):
            raise ValueError(f"{key!r} is not under {base!r}")
        return key[len(base):]
