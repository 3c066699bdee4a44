"""The weather service: forecasts and actuals over gRPC."""
