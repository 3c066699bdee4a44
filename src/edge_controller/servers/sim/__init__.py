"""The microgrid simulator: a pure physics model behind a real Microgrid API server.

- `site`: the TOML site file, parsed into typed specs with precise errors (the face:
  `site_details` reads each component kind's own keys with its parser from a table,
  `fault_spec` the fault tables it shares with the faults file);
- `model`: the pure, time-stepped physics and component state machines;
- `faults`: fault windows (delays, errors, NaN metrics, dropped streams, silence);
- `service`: the API-independent operations both gRPC servicers call;
- `server`: the `grpc.aio` server registering the v1alpha18 and v1 services.
"""
