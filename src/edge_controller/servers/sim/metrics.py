"""The metrics the simulator reports, by name.

Its own module because both the site file's parser (`nan_metrics` faults name them)
and the physics model use it, and the model imports the parser.
"""

from __future__ import annotations

from enum import Enum


class Metric(Enum):
    """The metrics the simulator reports; the servicers map them to each API's enum."""

    AC_ACTIVE_POWER = "ac_active_power"
    AC_ACTIVE_POWER_PHASE_1 = "ac_active_power_phase_1"
    AC_ACTIVE_POWER_PHASE_2 = "ac_active_power_phase_2"
    AC_ACTIVE_POWER_PHASE_3 = "ac_active_power_phase_3"
    AC_REACTIVE_POWER = "ac_reactive_power"
    AC_CURRENT_PHASE_1 = "ac_current_phase_1"
    AC_CURRENT_PHASE_2 = "ac_current_phase_2"
    AC_CURRENT_PHASE_3 = "ac_current_phase_3"
    AC_VOLTAGE_PHASE_1_N = "ac_voltage_phase_1_n"
    AC_VOLTAGE_PHASE_2_N = "ac_voltage_phase_2_n"
    AC_VOLTAGE_PHASE_3_N = "ac_voltage_phase_3_n"
    AC_FREQUENCY = "ac_frequency"
    DC_POWER = "dc_power"
    DC_VOLTAGE = "dc_voltage"
    DC_CURRENT = "dc_current"
    BATTERY_SOC_PCT = "battery_soc_pct"
    BATTERY_CAPACITY = "battery_capacity"
    BATTERY_TEMPERATURE = "battery_temperature"
    SENSOR_IRRADIANCE = "sensor_irradiance"
    SENSOR_WIND_SPEED = "sensor_wind_speed"
    SENSOR_TEMPERATURE = "sensor_temperature"


METRIC_NAMES = frozenset(metric.value for metric in Metric)
"""Every name a `nan_metrics` fault may list (lower case, as in `Metric`)."""
