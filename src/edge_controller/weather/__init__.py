"""Weather: a local Frequenz Weather API server on measured data, sources, production models.

Modules, from core to shell (the first seven are pure and import nothing from `grpc`):

- `messages`: `GeoLocation`, and the `WeatherForecast` / `ForecastStep` that the
  `WeatherActor` publishes on its channel;
- `solar`: where the sun is (zenith, azimuth, irradiance above the atmosphere);
- `wind`: wind components and the 10 m → hub-height profile;
- `power_curve`: a turbine's output along a curve given as points (the simulator's and
  the market's turbines, `DEFAULT_WIND_CURVE`);
- `data`: the NREL TMY3 files shipped by `pvlib`, the nearest-dataset rule, the shift
  to the location's solar time, interpolation (`actual_weather`);
- `forecast`: the seeded forecast error that grows with lead time (`forecast_weather`);
- `production`: PV (`pvlib`) and wind (`windpowerlib` power curve) power, shared by the
  simulator (actual weather) and the market-bid actor (forecast);
- `service`: the Weather API's operations, independent of gRPC (validation, features,
  live and historical forecasts); `servicer`, `server`: the `grpc.aio` shell;
  `command`: the `weather-server` subcommand;
- `convert`, `actor`: the `WeatherActor` and its sources (the Weather API through
  `frequenz-client-weather`; `openweathermap`: an OpenWeatherMap-style HTTP API).

This package imports nothing on its own: import the module you need (`command` stays
light for the command line; `pvlib` takes about half a second to import).
"""
