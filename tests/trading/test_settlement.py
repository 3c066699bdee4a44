"""Settlement: traded against delivered energy per period, sample by sample (a table of steps)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from edge_controller.trading.settlement import PeriodSettlement, SettlementBook

T0 = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_sale_delivered_as_traded_settles_with_no_imbalance() -> None:
    book = SettlementBook()
    book.add_trade(T0, QUARTER, -400_000, 120.0)  # sell 0.4 MW at 120 EUR/MWh
    for second in range(-10, 15 * 60 + 11, 10):  # -400 kW from the start, 0 outside
        book.add_sample(at(second), -400_000 if 0 <= second < 900 else 0.0)
    assert book.settle_due(at(899)) == []
    (settled,) = book.settle_due(at(900))
    assert settled.traded_mwh == pytest.approx(-0.1)
    assert settled.traded_mw == pytest.approx(-0.4)
    assert settled.delivered_mwh == pytest.approx(-0.1)
    assert settled.imbalance_mwh == pytest.approx(0.0)
    assert settled.coverage == 1.0
    assert settled.value_eur == pytest.approx(12.0)  # income
    assert book.settled == (settled,)
    assert book.open == {}


def test_samples_hold_until_the_next_one_and_split_at_period_boundaries() -> None:
    book = SettlementBook(max_gap=timedelta(minutes=1))
    book.add_trade(T0, QUARTER, 200_000, 50.0)  # a purchase: the batteries charge
    book.add_trade(T0 + QUARTER, QUARTER, 200_000, 50.0)
    steps: list[tuple[float, float | None]] = [
        (870, 100_000),  # 30 s at 100 kW ...
        (930, 300_000),  # ... split: 30 s in the first period, 30 s in the second
        (960, None),  # 30 s at 300 kW in the second
        (990, 0.0),  # unknown: not counted
    ]
    for seconds, power in steps:
        book.add_sample(at(seconds), power)
    first, second = (book.open[T0], book.open[T0 + QUARTER])
    assert first.delivered_mwh == pytest.approx(100_000 * 30 / 3600 / 1e6)
    assert first.measured_s == 30
    assert second.delivered_mwh == pytest.approx((100_000 * 30 + 300_000 * 30) / 3600 / 1e6)
    assert second.measured_s == 60
    assert second.value_eur == pytest.approx(-0.05 * 50)  # cost
    book.settle_due(at(1800))
    assert [p.start for p in book.settled] == [T0, T0 + QUARTER]
    assert book.settled[1].coverage == pytest.approx(60 / 900)


def test_a_gap_longer_than_allowed_and_late_samples_count_nothing() -> None:
    book = SettlementBook(max_gap=timedelta(seconds=30))
    book.add_trade(T0, QUARTER, -100_000, 80.0)
    book.add_sample(at(0), -100_000)
    book.add_sample(at(60), -100_000)  # 60 s since the last: a gap
    book.add_sample(at(50), -999_999)  # out of order: ignored
    book.add_sample(at(70), math.nan)  # 10 s at -100 kW counted; NaN is unknown
    book.add_sample(at(80), -100_000)  # after an unknown: not counted
    assert book.open[T0].measured_s == 10
    assert book.open[T0].delivered_mwh == pytest.approx(-100_000 * 10 / 3600 / 1e6)


def test_several_trades_add_up_and_periods_without_trades_are_not_kept() -> None:
    book = SettlementBook()
    book.add_sample(at(0), -50_000)
    book.add_sample(at(10), -50_000)  # nothing traded: nothing to settle
    assert book.open == {}
    book.add_trade(T0, QUARTER, -300_000, 100.0)
    period = book.add_trade(T0, QUARTER, -100_000, 110.0)
    assert period == PeriodSettlement(
        T0,
        QUARTER,
        traded_mwh=pytest.approx(-0.1),  # type: ignore[arg-type]
        value_eur=pytest.approx(0.075 * 100 + 0.025 * 110),  # type: ignore[arg-type]
        trades=2,
    )
    assert book.settle_due(at(10_000))[0].coverage == 0.0


def test_bad_trades_and_settings_are_refused() -> None:
    book = SettlementBook()
    with pytest.raises(ValueError, match="finite"):
        book.add_trade(T0, QUARTER, math.inf, 10.0)
    with pytest.raises(ValueError, match="duration"):
        book.add_trade(T0, timedelta(0), 1.0, 10.0)
    with pytest.raises(ValueError, match="max_gap"):
        SettlementBook(max_gap=timedelta(0))
    with pytest.raises(ValueError, match="keep"):
        SettlementBook(keep=0)


def test_only_the_last_settled_periods_are_kept() -> None:
    book = SettlementBook(keep=2)
    for i in range(3):
        book.add_trade(T0 + i * QUARTER, QUARTER, 100_000, 10.0)
    book.settle_due(at(3600))
    assert [p.start for p in book.settled] == [T0 + QUARTER, T0 + 2 * QUARTER]
