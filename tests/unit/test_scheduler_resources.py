"""Property tests: resource-aware placement never overcommits a machine and never
gives one host port twice, over random workloads and many rounds.

The checks are brute force, written here, independent of the scheduler's ledger.
"""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from unitctl.model import Capacity, DesiredState, Machine, Needs, Requirements
from unitctl.ports import allocate
from unitctl.scheduler import ClusterSnapshot, Plan, UnitInfo, schedule

MIDS = [c * 8 + "0" * 24 for c in "abcd"]
NAMES = [f"u{i}.service" for i in range(10)]
GIB = 1024 ** 3
PORT_NAMES = ["PORT", "PORT_ADMIN", "PORT_DB"]

capacities = st.one_of(
    st.just(Capacity()),  # an old agent: unlimited
    st.builds(Capacity, cpu_milli=st.sampled_from([500, 1000, 2000]),
              mem_bytes=st.sampled_from([GIB // 2, GIB, 2 * GIB]),
              port_range=st.sampled_from([(31000, 31002), (31000, 31005), (8079, 8081)])))
needs = st.builds(
    Needs,
    cpu_milli=st.sampled_from([0, 0, 250, 500, 1000]),
    mem_bytes=st.sampled_from([0, 0, GIB // 4, GIB // 2, GIB]),
    dynamic_ports=st.lists(st.sampled_from(PORT_NAMES), max_size=2, unique=True).map(
        lambda names: tuple(sorted(names))),
    fixed_ports=st.lists(st.sampled_from([80, 8080, 31001]), max_size=1).map(tuple),
    binpack=st.booleans())
desired = st.sampled_from([DesiredState.LAUNCHED, DesiredState.LAUNCHED, DesiredState.LOADED,
                           DesiredState.INACTIVE])


@st.composite
def workloads(draw: st.DrawFn) -> ClusterSnapshot:
    """Machines with capacities; units with needs; stale placements and allocations."""
    mids = draw(st.lists(st.sampled_from(MIDS), min_size=1, max_size=4, unique=True))
    machines = {m: Machine(id=m, capacity=draw(capacities)) for m in mids}
    names = draw(st.lists(st.sampled_from(NAMES), max_size=len(NAMES), unique=True))
    units = {n: UnitInfo(n, "h", draw(desired), Requirements(
        is_global=draw(st.sampled_from([False, False, False, True])), needs=draw(needs)))
        for n in names}
    placed = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    placements = {n: draw(st.sampled_from(MIDS)) for n in placed}
    allocations = {n: {placements[n]: {p: draw(st.integers(31000, 31003))
                                       for p in units[n].req.needs.dynamic_ports}}
                   for n in placed if draw(st.booleans())}
    return ClusterSnapshot(machines, units, placements, allocations=allocations)


def residents(snap: ClusterSnapshot, plan: Plan) -> dict[str, list[str]]:
    """machine -> every unit the plan runs there (global ones included)."""
    found: dict[str, list[str]] = {m: [] for m in snap.machines}
    for name, machine in plan.placements.items():
        found[machine].append(name)
    for name, machines in plan.global_placements.items():
        for machine in machines:
            found[machine].append(name)
    return found


def violations(snap: ClusterSnapshot, plan: Plan) -> list[str]:
    bad: list[str] = []
    for machine, names in residents(snap, plan).items():
        cap = snap.machines[machine].capacity
        cpu = sum(snap.units[n].req.needs.cpu_milli for n in names)
        mem = sum(snap.units[n].req.needs.mem_bytes for n in names)
        if cap.cpu_milli is not None and cpu > cap.cpu_milli:
            bad.append(f"{machine[:8]} overcommitted: cpu {cpu} > {cap.cpu_milli}")
        if cap.mem_bytes is not None and mem > cap.mem_bytes:
            bad.append(f"{machine[:8]} overcommitted: mem {mem} > {cap.mem_bytes}")
        ports: list[int] = []
        for name in names:
            unit_needs = snap.units[name].req.needs
            got = plan.ports.get(name, {}).get(machine, {})
            if set(got) != set(unit_needs.dynamic_ports):
                bad.append(f"{name} on {machine[:8]} got ports {got}")
            low, high = cap.port_range
            bad += [f"{name}: {p} outside {low}-{high}" for p in got.values()
                    if not low <= p <= high]
            ports += [*got.values(), *unit_needs.fixed_ports]
        if len(ports) != len(set(ports)):
            bad.append(f"{machine[:8]}: a host port given twice: {sorted(ports)}")
    return bad


def next_snapshot(snap: ClusterSnapshot, plan: Plan) -> ClusterSnapshot:
    """The cluster after the plan was committed."""
    return ClusterSnapshot(snap.machines, snap.units, dict(plan.placements), allocations=plan.ports)


@settings(max_examples=500, deadline=None)
@given(workloads())
def test_no_machine_is_overcommitted_and_no_port_is_given_twice(snap: ClusterSnapshot) -> None:
    plan = schedule(snap)
    assert violations(snap, plan) == []


@settings(max_examples=300, deadline=None)
@given(workloads())
def test_rounds_settle_and_keep_every_port(snap: ClusterSnapshot) -> None:
    """Ports released in a round are free from the next one: a plan that needs
    them says so (recheck). Released ports can cascade (a global unit that takes
    them frees others), but the rounds settle within a few, and the round after
    a plan without recheck changes nothing."""
    first = schedule(snap)
    for _ in range(len(NAMES)):
        if not first.recheck:
            break
        snap = next_snapshot(snap, first)
        first = schedule(snap)
    assert not first.recheck, "rounds did not settle"
    again = schedule(next_snapshot(snap, first))
    assert again.decisions == ()
    assert not again.recheck
    assert dict(again.placements) == dict(first.placements)
    assert again.ports == first.ports


@st.composite
def rounds(draw: st.DrawFn) -> tuple[ClusterSnapshot, list[tuple[str, DesiredState, Needs]]]:
    return draw(workloads()), draw(st.lists(
        st.tuples(st.sampled_from(NAMES), desired, needs), min_size=1, max_size=8))


@settings(max_examples=300, deadline=None)
@given(rounds())
def test_random_workload_over_many_rounds(
        case: tuple[ClusterSnapshot, list[tuple[str, DesiredState, Needs]]]) -> None:
    """Units come, go and change one at a time; after every round the invariants hold,
    and a unit that stays on its machine keeps its ports there."""
    snap, changes = case
    plan = schedule(snap)
    for name, state, unit_needs in changes:
        snap = next_snapshot(snap, plan)
        units = dict(snap.units)
        units[name] = UnitInfo(name, "h", state, Requirements(needs=unit_needs))
        snap = ClusterSnapshot(snap.machines, units, snap.placements, allocations=snap.allocations)
        plan = schedule(snap)
        assert violations(snap, plan) == []
        for other, machine in plan.placements.items():
            before = snap.allocations.get(other, {}).get(machine)
            if other != name and before is not None and snap.placements.get(other) == machine:
                assert plan.ports[other][machine] == before


def test_explain_names_the_shortfall() -> None:
    small = Machine(MIDS[0], capacity=Capacity(cpu_milli=2000, mem_bytes=GIB))
    big = UnitInfo("db.service", "h", DesiredState.LAUNCHED,
                   Requirements(needs=Needs(mem_bytes=GIB + GIB // 2)))
    plan = schedule(ClusterSnapshot({small.id: small}, {"db.service": big}, {}))
    assert plan.unplaceable["db.service"] == {
        small.id: "needs 1.5 GiB memory, 1 GiB free (of 1 GiB)"}


def test_two_units_with_one_fixed_port_never_share_a_machine() -> None:
    machines = {m: Machine(m) for m in MIDS[:2]}
    web = Requirements(needs=Needs(fixed_ports=(80,)))
    units = {n: UnitInfo(n, "h", DesiredState.LAUNCHED, web) for n in ("a.service", "b.service")}
    plan = schedule(ClusterSnapshot(machines, units, {}))
    assert sorted(plan.placements.values()) == sorted(machines)


def test_spread_and_binpack() -> None:
    machines = {m: Machine(m, capacity=Capacity(cpu_milli=2000, mem_bytes=4 * GIB))
                for m in MIDS[:2]}
    mem = Needs(mem_bytes=GIB)
    units = {n: UnitInfo(n, "h", DesiredState.LAUNCHED, Requirements(needs=mem))
             for n in ("a.service", "b.service")}
    spread = schedule(ClusterSnapshot(machines, units, {}))
    assert len(set(spread.placements.values())) == 2
    packed = {n: UnitInfo(n, "h", DesiredState.LAUNCHED, Requirements(
        needs=Needs(mem_bytes=GIB, binpack=True))) for n in units}
    assert len(set(schedule(ClusterSnapshot(machines, packed, {})).placements.values())) == 1


def test_global_units_count() -> None:
    machine = Machine(MIDS[0], capacity=Capacity(mem_bytes=GIB))
    units = {"agent.service": UnitInfo("agent.service", "h", DesiredState.LAUNCHED, Requirements(
        is_global=True, needs=Needs(mem_bytes=GIB // 2 + 1))),
        "db.service": UnitInfo("db.service", "h", DesiredState.LAUNCHED,
                               Requirements(needs=Needs(mem_bytes=GIB // 2)))}
    plan = schedule(ClusterSnapshot({machine.id: machine}, units, {}))
    assert "db.service" in plan.unplaceable


def _taken(allocation: Mapping[str, int] | None) -> list[int]:
    return sorted((allocation or {}).values())


@given(st.lists(st.sampled_from(PORT_NAMES), unique=True),
       st.sets(st.integers(30998, 31006)),
       st.dictionaries(st.sampled_from(PORT_NAMES), st.integers(30998, 31006)))
def test_allocate_never_gives_a_taken_port_and_keeps_previous(
        names: list[str], taken: set[int], previous: dict[str, int]) -> None:
    got = allocate(names, (31000, 31004), taken, previous)
    if got is None:
        assert 5 - len({p for p in taken if 31000 <= p <= 31004}) < len(names)
        return
    assert set(got) == set(names)
    assert len(set(got.values())) == len(names)
    assert not set(got.values()) & taken
    assert all(31000 <= p <= 31004 for p in got.values())
    for name, port in previous.items():
        if name in names and 31000 <= port <= 31004 and port not in taken and list(
                previous.values()).count(port) == 1:
            assert got[name] == port
