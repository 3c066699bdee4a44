"""The microgrid simulator: a pure physics model behind a real Microgrid API server.

- `site`: the TOML site file, parsed into typed specs with precise errors;
- `model`: the pure, time-stepped physics and component state machines;
- `faults`: fault windows (delays, errors, NaN metrics, dropped streams, silence);
- `service`: the API-independent operations both gRPC servicers call;
- `server`: the `grpc.aio` server registering the v1alpha18 and v1 services.
"""
