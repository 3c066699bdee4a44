"""A local Frequenz Dispatch API server: `frequenz.api.dispatch.v1.MicrogridDispatchService`.

For lab use and tests: `frequenz-dispatch`'s `Dispatcher`, `frequenz-client-dispatch`
and its `dispatch-cli` work against it unchanged. Modules, from core to shell:

- `model`: a dispatch as plain frozen dataclasses (no protobuf);
- `rules`: pure validation, end time, update masks, update times;
- `query`: pure filtering, sorting and pagination of lists;
- `convert`: protobuf messages ↔ `model`;
- `storage`: durable SQLite storage, one transaction per write;
- `service`: the operations (in-memory view, write-through, change streams);
- `auth`: API keys (the keys file; the interceptor that checks metadata `key`);
- `servicer`, `server`: the `grpc.aio` shell; `command`: the CLI subcommand's flags.

Decisions where the API leaves room are listed in `rules` (limits, start-time grace,
end times) and `query` (filter, sort and pagination semantics). Two more:

- A microgrid not served (`--microgrid-id` given without it) is NOT_FOUND: the
  microgrid, as a resource, does not exist on this server. Microgrid id 0 (unset) is
  INVALID_ARGUMENT.
- A dispatch of another microgrid is NOT_FOUND, as an unknown id is; ids are unique
  across microgrids and never reused.
"""
