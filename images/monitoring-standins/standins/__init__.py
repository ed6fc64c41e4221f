"""Stand-ins for Grafana, Loki, Grafana Alloy and cAdvisor (test images only; see README.md)."""
