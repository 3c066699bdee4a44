from datetime import timedelta

from edge_controller.dispatching.ownership import RunningDispatch, assign
from tests.conftest import NOON


def running(
    dispatch_id: int, minutes: int, batteries: set[int], power_w: float = -1000.0
) -> RunningDispatch:
    return RunningDispatch(
        dispatch_id, NOON + timedelta(minutes=minutes), frozenset(batteries), power_w
    )


def test_disjoint_dispatches_each_drive_their_batteries() -> None:
    result = assign([running(1, 0, {11, 21}), running(2, 1, {31})])
    assert result.owned == {1: {11, 21}, 2: {31}}
    assert result.conflicts == ()


def test_the_newest_dispatch_wins_the_shared_batteries_and_both_ids_are_reported() -> None:
    result = assign([running(1, 0, {11, 21, 31}), running(2, 5, {21, 31, 41})])
    assert result.owned == {2: {21, 31, 41}, 1: {11}}
    assert len(result.conflicts) == 1
    conflict = result.conflicts[0]
    assert (conflict.winner, conflict.loser) == (2, 1)
    assert conflict.batteries == {21, 31}


def test_a_fully_covered_older_dispatch_drives_nothing_until_the_newer_ends() -> None:
    older, newer = running(1, 0, {11}), running(2, 5, {11, 21})
    assert assign([older, newer]).owned == {2: {11, 21}}
    assert assign([older]).owned == {1: {11}}


def test_ties_on_creation_time_go_to_the_higher_id_deterministically() -> None:
    first = assign([running(3, 0, {11}), running(4, 0, {11})])
    second = assign([running(4, 0, {11}), running(3, 0, {11})])
    assert first == second
    assert first.owned == {4: {11}}
