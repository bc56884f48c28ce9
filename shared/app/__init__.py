"""The application's wiring: the settings, read once; the runtime, which builds one client of
each adapter per process and the pipeline over them; and the OpenTelemetry set-up."""
