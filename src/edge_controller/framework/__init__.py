"""What a use case is built on: supervised actors and the messages of the power pipeline."""
