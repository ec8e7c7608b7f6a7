"""Kubernetes manifests (k8s/) and the container image: render, validate, lint, policies."""
