"""Bundles: who owns which unit, and each bundle's recorded revisions (client-owned).

``owners/<unit>`` names the bundle that owns a unit (``unitctl apply``
created it, or took it over with ``--adopt``); only the owner may prune it.
``template-owners/<template>`` does the same for config templates.
``bundles/<bundle>/<n>`` is revision ``n`` (:mod:`.revisions`), and
``bundlebodies/<bundle>/<sha>`` the unit texts the kept revisions name, so a
rollback finds the text of a unit whose ``bodies/`` key went with its last
user. Every write that depends on a read is a compare-and-swap: an owner is
claimed only while no owner record exists (or released only while it still
names the bundle), and revision ``n`` is created only while absent, so two
applies of one bundle at once cannot both record ``n``.

Bounds: writes are packed under etcd's operation and byte limits
(:data:`~unitctl.registry.kv.MAX_TXN_OPS`, :data:`~unitctl.registry.kv.MAX_TXN_BYTES`);
bodies are read a few at a time, never all in one reply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from unitctl.errors import ConflictError
from unitctl.registry import blocking, poison
from unitctl.registry.keys import Keys
from unitctl.registry.keyspace import Entity, Keyspace
from unitctl.registry.kv import (
    KV,
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    Compare,
    Delete,
    KeyValue,
    Op,
    Put,
    mod_is,
    request_bytes,
    value_is,
)
from unitctl.registry.revisions import (
    KEEP,
    Revision,
    decode_revision,
    dropped,
    encode_revision,
    unused_bodies,
)

#: Body reads in flight at once.
BODY_READS = 8

Group = tuple[list[Compare], list[Op]]


def _packed(groups: Iterable[Group]) -> Iterator[Group]:
    """Consecutive groups merged into transactions under the op and byte limits."""
    compares: list[Compare] = []
    ops: list[Op] = []
    size = 0
    for cmp, mine in groups:
        n, b = len(cmp) + len(mine), request_bytes(cmp, mine)
        if (compares or ops) and (len(compares) + len(ops) + n > MAX_TXN_OPS
                                  or size + b > MAX_TXN_BYTES):
            yield compares, ops
            compares, ops, size = [], [], 0
        compares, ops, size = compares + cmp, ops + mine, size + b
    if compares or ops:
        yield compares, ops


class BundleStore:
    """Owner records, revisions and revision bodies over the KV port."""

    def __init__(self, kv: KV, keyspace: Keyspace) -> None:
        self.kv = kv
        self.keyspace = keyspace
        self.keys: Keys = keyspace.keys

    # -- owners ------------------------------------------------------------
    async def owners(self) -> dict[str, str]:
        """Every owner record: unit -> bundle."""
        return await self._owners(self.keys.owners())

    async def template_owners(self) -> dict[str, str]:
        """Every config template's owner record: template -> bundle."""
        return await self._owners(self.keys.template_owners())

    async def _owners(self, root: str) -> dict[str, str]:
        rng = await self.kv.get_prefix(root)
        return {self.keys.tail(kv.key, root): kv.value.decode() for kv in rng.kvs}

    async def claim(self, bundle: str, names: Sequence[str], known: Mapping[str, str]) -> None:
        """Make ``bundle`` the owner of units ``names``, each of which had the owner
        ``known`` shows (absent or ``bundle``) when it was read.

        Raises:
            ConflictError: an owner record changed since it was read.
        """
        await self._claim(self.keys.owner, bundle, names, known)

    async def claim_templates(self, bundle: str, names: Sequence[str],
                              known: Mapping[str, str]) -> None:
        """:meth:`claim` for config templates."""
        await self._claim(self.keys.template_owner, bundle, names, known)

    async def _claim(self, key_of: Callable[[str], str], bundle: str, names: Sequence[str],
                     known: Mapping[str, str]) -> None:
        groups: list[Group] = []
        for name in names:
            key = key_of(name)
            guard = value_is(key, bundle.encode()) if known.get(name) == bundle else \
                mod_is(key, 0)
            groups.append(([guard], [Put(key, bundle.encode())]))
        for compares, ops in _packed(groups):
            if not await self.kv.txn(compares, ops):
                raise ConflictError(f"the owners of bundle {bundle}'s units changed "
                                    "meanwhile (another apply?); try again")

    async def release(self, bundle: str, names: Sequence[str]) -> None:
        """Delete the owner records of units ``names`` that still name ``bundle``."""
        await self._release(self.keys.owner, bundle, names)

    async def release_templates(self, bundle: str, names: Sequence[str]) -> None:
        """:meth:`release` for config templates."""
        await self._release(self.keys.template_owner, bundle, names)

    async def _release(self, key_of: Callable[[str], str], bundle: str,
                       names: Sequence[str]) -> None:
        for name in names:
            key = key_of(name)
            await self.kv.txn([value_is(key, bundle.encode())], [Delete(key)])

    # -- revisions -----------------------------------------------------------
    def _decode(self, kv: KeyValue) -> Revision:
        ref = self.keyspace.ref(kv.key, Entity.BUNDLE_REVISION)
        return decode_revision(kv.key, ref.name, kv.value)

    async def all_revisions(self) -> dict[str, list[Revision]]:
        """Every bundle's kept revisions, oldest first (records that do not decode skipped)."""
        rng = await self.kv.get_prefix(self.keys.bundles())
        out: dict[str, list[Revision]] = {}
        kvs = [kv for kv in rng.kvs if self.keyspace.parse(kv.key) is not None]
        for rev in poison.decode_each(kvs, self._decode)[0]:
            out.setdefault(rev.bundle, []).append(rev)
        return out

    async def revisions(self, bundle: str) -> list[Revision]:
        """The kept revisions of ``bundle``, oldest first."""
        rng = await self.kv.get_prefix(self.keys.bundle_revisions(bundle))
        revs = poison.decode_each(list(rng.kvs), self._decode)[0]
        return sorted(revs, key=lambda r: r.number)

    async def bodies(self, bundle: str, shas: Iterable[str]) -> dict[str, str]:
        """The texts of ``shas`` a revision of ``bundle`` names (those that exist)."""
        wanted = list(dict.fromkeys(shas))
        found: dict[str, str] = {}
        for i in range(0, len(wanted), BODY_READS):
            batch = wanted[i:i + BODY_READS]
            got = await blocking.gather(*(self.kv.get(self.keys.bundle_body(bundle, s))
                                          for s in batch))
            found.update((s, kv.value.decode()) for s, kv in zip(batch, got, strict=True)
                         if kv is not None)
        return found

    async def record(self, rev: Revision, bodies: Mapping[str, str],
                     kept: Sequence[Revision]) -> None:
        """Store revision ``rev`` (its number one above ``kept``'s newest), the bodies
        the kept revisions do not hold yet, and drop what falls out of :data:`KEEP`.

        Raises:
            ConflictError: revision ``rev.number`` was recorded meanwhile.
        """
        have = set().union(*(r.shas for r in kept)) if kept else set()
        puts = [Put(self.keys.bundle_body(rev.bundle, sha), bodies[sha].encode())
                for sha in sorted(rev.shas - have)]
        for compares, ops in _packed(([], [p]) for p in puts):
            await self.kv.txn(compares, ops)
        key = self.keys.bundle_revision(rev.bundle, rev.number)
        if not await self.kv.txn([mod_is(key, 0)], [Put(key, encode_revision(rev))]):
            raise ConflictError(f"bundle {rev.bundle} got revision {rev.number} from "
                                "another apply meanwhile; try again")
        every = [*kept, rev]
        gone_numbers = set(dropped((r.number for r in every), KEEP))
        gone = [r for r in every if r.number in gone_numbers]
        stay = [r for r in every if r.number not in gone_numbers]
        deletes: list[Op] = [Delete(self.keys.bundle_revision(rev.bundle, r.number))
                             for r in gone]
        deletes += [Delete(self.keys.bundle_body(rev.bundle, sha))
                    for sha in sorted(unused_bodies(stay, gone))]
        for compares, ops in _packed(([], [d]) for d in deletes):
            await self.kv.txn(compares, ops)
