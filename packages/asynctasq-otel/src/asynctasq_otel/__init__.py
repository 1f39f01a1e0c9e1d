"""OpenTelemetry tracing for AsyncTasQ."""
