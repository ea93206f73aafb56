"""The work behind the commands: each function returns a report object and never prints, parses argv or exits."""
