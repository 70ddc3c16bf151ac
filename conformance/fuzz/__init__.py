"""tierbed fuzz: generated scenarios, the simulator as oracle, shrunk departures kept as scenario files."""
