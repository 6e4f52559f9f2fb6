#!/usr/bin/env python3
"""Consistency checks over deploy/ that schema validation cannot make (run by validate.sh).

Usage: check-deploy.py REPO_ROOT RESOLVED_COMPOSE_YAML GENERATED_ENV_FILE

- docker-compose.yml, .env.example and gen-env.sh name the same variables;
- every MPC_* variable handed to an `mpc` process (compose and Kubernetes) is one the code
  reads (it appears as a string literal under crates/), so a renamed variable cannot leave the
  deployment silently unconfigured;
- Kubernetes: kustomization.yaml lists every manifest; every ConfigMap key, Secret key and port
  name referenced exists; every Service and NetworkPolicy selects some pod; every workload's
  selector matches its own pod labels.
Prints one line per problem and exits 1 if there is any.
"""

import re
import sys
from pathlib import Path

import yaml

problems: list[str] = []


def problem(message: str) -> None:
    problems.append(message)


def env_file_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split("=", 1)[0].strip())
    return names


def code_literals(root: Path) -> str:
    return "\n".join(p.read_text() for p in (root / "crates").rglob("*.rs"))


def is_mpc_process(service: dict) -> bool:
    return service.get("command", [None])[0] == "serve"


def check_compose(deploy: Path, resolved: dict, generated: Path, code: str) -> None:
    source = (deploy / "docker-compose.yml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", source))
    example = env_file_names(deploy / ".env.example")
    produced = env_file_names(generated)
    for name in sorted(referenced - example):
        problem(f"docker-compose.yml reads {name}, which .env.example does not document")
    for name in sorted(example - referenced):
        problem(f".env.example documents {name}, which docker-compose.yml does not read")
    for name in sorted(referenced ^ produced):
        problem(f"gen-env.sh and docker-compose.yml disagree about {name}")
    for name, service in resolved["services"].items():
        if not is_mpc_process(service):
            continue
        for var in service.get("environment", {}):
            if var.startswith("MPC_") and f'"{var}"' not in code:
                problem(f"compose service {name} sets {var}, which no crate reads")


def load_manifests(directory: Path) -> dict[str, list[dict]]:
    return {
        p.name: [d for d in yaml.safe_load_all(p.read_text()) if d]
        for p in sorted(directory.glob("*.yaml"))
    }


def pod_templates(docs: list[dict]) -> list[tuple[str, dict]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d)
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    ]


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def check_kubernetes(directory: Path, code: str) -> None:
    files = load_manifests(directory)
    kustomization = files.pop("kustomization.yaml")[0]
    secrets_example = files.pop("secrets.example.yaml")
    listed = set(kustomization["resources"])
    for name in sorted(set(files) - listed):
        problem(f"kustomization.yaml does not list {name}")
    for name in sorted(listed - set(files)):
        problem(f"kustomization.yaml lists {name}, which does not exist")

    docs = [d for ds in files.values() for d in ds]
    config = {
        d["metadata"]["name"]: set(d.get("data", {}))
        for d in docs
        if d["kind"] == "ConfigMap"
    }
    secrets = {
        d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
        for d in secrets_example
    }
    workloads = pod_templates(docs)
    pod_labels = [w["spec"]["template"]["metadata"]["labels"] for _, w in workloads]

    for what, workload in workloads:
        spec = workload["spec"]
        if not matches(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]):
            problem(f"{what}: its selector does not match its pod labels")
        pod = spec["template"]["spec"]
        for volume in pod.get("volumes", []):
            secret = volume.get("secret")
            if secret:
                for item in secret.get("items", []):
                    if item["key"] not in secrets.get(secret["secretName"], set()):
                        problem(f"{what}: volume reads {secret['secretName']}/{item['key']}, "
                                "which secrets.example.yaml does not define")
        for container in pod["containers"]:
            ports = {p["name"] for p in container.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None and port not in ports:
                    problem(f"{what}: {probe} uses port {port!r}, which the container does not name")
            for env in container.get("env", []):
                if env["name"].startswith("MPC_") and f'"{env["name"]}"' not in code:
                    problem(f"{what}: sets {env['name']}, which no crate reads")
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    if r["key"] not in config.get(r["name"], set()):
                        problem(f"{what}: {env['name']} reads ConfigMap {r['name']}/{r['key']}, "
                                "which config.yaml does not define")
                if "secretKeyRef" in ref:
                    r = ref["secretKeyRef"]
                    if r["key"] not in secrets.get(r["name"], set()):
                        problem(f"{what}: {env['name']} reads Secret {r['name']}/{r['key']}, "
                                "which secrets.example.yaml does not define")

    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] == "Service":
            if not any(matches(d["spec"]["selector"], labels) for labels in pod_labels):
                problem(f"{name} selects no pod")
        if d["kind"] == "StatefulSet":
            service = d["spec"]["serviceName"]
            if not any(s["kind"] == "Service" and s["metadata"]["name"] == service for s in docs):
                problem(f"{name}: its serviceName {service} is not defined")
        if d["kind"] in ("NetworkPolicy", "PodDisruptionBudget"):
            key = "podSelector" if d["kind"] == "NetworkPolicy" else "selector"
            selector = d["spec"][key].get("matchLabels", {})
            if selector and not any(matches(selector, labels) for labels in pod_labels):
                problem(f"{name} selects no pod")
            for rule in d["spec"].get("ingress", []):
                for peer in rule.get("from", []):
                    peer_selector = peer.get("podSelector", {}).get("matchLabels")
                    if peer_selector and not any(matches(peer_selector, l) for l in pod_labels):
                        problem(f"{name} admits pods {peer_selector}, which match no pod")


def main() -> int:
    root, resolved, generated = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    deploy = root / "deploy"
    code = code_literals(root)
    check_compose(deploy, yaml.safe_load(resolved.read_text()), generated, code)
    check_kubernetes(deploy / "kubernetes", code)
    for p in problems:
        print(f"deploy check: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
