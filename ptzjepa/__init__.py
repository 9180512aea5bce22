"""ptzjepa's top layer: the command line over the services' public functions and REST APIs."""
