"""`make cost`: a monthly estimate of each environment, from its synthesized templates.

Every quantity that a template fixes is read from it: interface endpoints and the subnets
(AZs) each sits in, the setup egress, load balancers, Fargate task sizes, counts and
capacity provider strategies, the load client's instance type and volumes, KMS keys, log
groups and their retention, Container Insights, alarms. What a template cannot know (traffic,
log volume, how long setup keeps the NAT) is an :class:`Assumptions` field, printed with the
estimate. Prices come from ``tools/cost_prices.json``: one dated table per region, with its
sources.

Usage: ``python tools/cost.py [--assembly cdk.out] [--region REGION] [ENV ...]``. Without
``--assembly`` the app is synthesized in-process from cdk.json (no AWS calls, no Docker).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PRICES_FILE = Path(__file__).resolve().with_name("cost_prices.json")

Template = Mapping[str, Any]
Prices = Mapping[str, Any]

ON_DEMAND = "FARGATE"
SPOT = "FARGATE_SPOT"
_SCALABLE_TARGET = "AWS::ApplicationAutoScaling::ScalableTarget"


@dataclass(frozen=True)
class Assumptions:
    """What the templates cannot say. Each field's metadata explains it in the output."""

    hours_per_month: float = field(default=730, metadata={"doc": "hours in a month"})
    endpoint_gb: float = field(
        default=5,
        metadata={"doc": "GB a month through the interface endpoints (logs, traces, ECR, SSM)"},
    )
    setups_per_month: float = field(
        default=1, metadata={"doc": "times a month the setup egress opens (one deploy each)"}
    )
    setup_hours: float = field(
        default=1,
        metadata={
            "doc": "billed hours the NAT and its Elastic IP live per setup (about 30-45 min "
            "until the service is steady and the load client signalled; a partial hour bills "
            "as a full one)"
        },
    )
    nat_gb_per_setup: float = field(
        default=1, metadata={"doc": "GB through the NAT per setup (first pulls through the cache)"}
    )
    alb_lcu: float = field(
        default=1,
        metadata={
            "doc": "average LCUs per load balancer (1 LCU: 25 new connections/s, or 3,000 "
            "active connections, or 1 GB processed an hour)"
        },
    )
    spot_discount: float = field(
        default=0.7,
        metadata={"doc": "Fargate Spot discount off On-Demand (the pricing page's 'up to 70%')"},
    )
    log_gb_per_task: float = field(
        default=1, metadata={"doc": "GB of container logs (app + sidecar) per task a month"}
    )
    flow_log_gb: float = field(default=2, metadata={"doc": "GB of VPC flow logs a month"})
    insights_metrics: int = field(
        default=40,
        metadata={
            "doc": "Container Insights metrics per cluster with one service (cluster, "
            "service and task-family dimensions), billed as custom metrics"
        },
    )
    insights_gb_per_task: float = field(
        default=0.2,
        metadata={"doc": "GB of Container Insights performance events per task a month"},
    )


@dataclass(frozen=True)
class Line:
    name: str
    quantity: str
    usd: float


@dataclass(frozen=True)
class Estimate:
    environment: str
    region: str
    """The stacks' region, or ``env-agnostic``."""
    price_region: str
    price_note: str
    lines: tuple[Line, ...]
    max_total: float
    """The total with the Fargate line at max_count tasks all month."""

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)

    @property
    def biggest(self) -> Line:
        return max(self.lines, key=lambda line: line.usd)


# ---- reading templates -------------------------------------------------------------------


def resources(templates: Mapping[str, Template], cfn_type: str) -> Iterator[tuple[str, str, Any]]:
    """(stack id, logical id, properties) of every resource of ``cfn_type``."""
    for stack_id, template in templates.items():
        for logical_id, resource in template.get("Resources", {}).items():
            if resource.get("Type") == cfn_type:
                yield stack_id, logical_id, resource.get("Properties", {})


def _ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, Mapping) else None


def _count(value: Any) -> int:
    """How many items a template list holds (a token list counts as one)."""
    return len(value) if isinstance(value, list) else 1


def _months(retention_days: int | None) -> float:
    """Months of data kept at steady state; a group that never expires is priced at a year."""
    return (retention_days if retention_days else 365) / (365 / 12)


def split_tasks(count: float, strategy: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """(On-Demand, Spot) tasks for ``count`` tasks under an ECS capacity provider strategy.

    ECS places each provider's ``Base`` first, then the rest in proportion to the weights.
    An empty strategy (a launch type) places every task On-Demand.
    """
    placed = {ON_DEMAND: 0.0, SPOT: 0.0}
    if not strategy:
        return count, 0.0
    for item in strategy:
        provider = item["CapacityProvider"]
        if provider not in placed:
            raise ValueError(f"capacity provider {provider!r} has no Fargate price")
    remaining = float(count)
    for item in strategy:
        base = min(float(item.get("Base", 0)), remaining)
        placed[item["CapacityProvider"]] += base
        remaining -= base
    weights = sum(float(item.get("Weight", 0)) for item in strategy)
    for item in strategy:
        if weights:
            placed[item["CapacityProvider"]] += remaining * float(item.get("Weight", 0)) / weights
        elif item is strategy[0]:
            placed[item["CapacityProvider"]] += remaining
    return placed[ON_DEMAND], placed[SPOT]


@dataclass(frozen=True)
class Service:
    stack_id: str
    vcpu: float
    gb: float
    arm: bool
    min_count: int
    max_count: int
    strategy: tuple[Mapping[str, Any], ...]
    log_groups: tuple[str, ...]


def services(templates: Mapping[str, Template]) -> list[Service]:
    """Every ECS service with its task size, task counts, strategy and container log groups."""
    found = []
    for stack_id, logical_id, props in resources(templates, "AWS::ECS::Service"):
        stack = templates[stack_id]["Resources"]
        task = stack[_ref(props["TaskDefinition"]) or ""]["Properties"]
        platform = task.get("RuntimePlatform", {})
        counts = [
            (int(p["MinCapacity"]), int(p["MaxCapacity"]))
            for _, _, p in resources({stack_id: templates[stack_id]}, _SCALABLE_TARGET)
            if f'"{logical_id}"' in json.dumps(p.get("ResourceId"))
        ]
        desired = int(props.get("DesiredCount", 1))
        low, high = counts[0] if counts else (desired, desired)
        strategy = props.get("CapacityProviderStrategy") or _cluster_strategy(
            templates[stack_id], _ref(props.get("Cluster"))
        )
        options = [
            c.get("LogConfiguration", {}).get("Options", {})
            for c in task.get("ContainerDefinitions", [])
        ]
        log_groups = tuple(g for o in options if (g := _ref(o.get("awslogs-group"))))
        found.append(
            Service(
                stack_id=stack_id,
                vcpu=int(task["Cpu"]) / 1024,
                gb=int(task["Memory"]) / 1024,
                arm=platform.get("CpuArchitecture") == "ARM64",
                min_count=low,
                max_count=high,
                strategy=tuple(strategy),
                log_groups=log_groups,
            )
        )
    return found


def _cluster_strategy(template: Template, cluster: str | None) -> list[Mapping[str, Any]]:
    for _, _, props in resources({"": template}, "AWS::ECS::ClusterCapacityProviderAssociations"):
        if _ref(props.get("Cluster")) == cluster or props.get("Cluster") == cluster:
            return list(props.get("DefaultCapacityProviderStrategy", []))
    return []


def _retention(templates: Mapping[str, Template], stack_id: str, group: str) -> int | None:
    props = templates[stack_id]["Resources"].get(group, {}).get("Properties", {})
    days = props.get("RetentionInDays")
    return int(days) if days is not None else None


# ---- one function per line -----------------------------------------------------------------


def interface_endpoints(templates: Mapping[str, Template], p: Prices, a: Assumptions) -> Line:
    azs = [
        _count(props.get("SubnetIds", []))
        for _, _, props in resources(templates, "AWS::EC2::VPCEndpoint")
        if props.get("VpcEndpointType") == "Interface"
    ]
    hours = sum(azs) * a.hours_per_month
    # Calls from an AZ without the endpoints cross an AZ boundary: charged out and in.
    subnets = len(list(resources(templates, "AWS::EC2::Subnet")))
    share = 1 - sum(azs) / (len(azs) * subnets) if azs and subnets else 0.0
    per = (
        f"{len(azs)} endpoints x {azs[0]} AZ{'s' if azs[0] != 1 else ''}"
        if azs and len(set(azs)) == 1
        else f"{len(azs)} endpoints in {sum(azs)} endpoint-AZs"
    )
    gb = a.endpoint_gb if azs else 0
    crossing = f" ({gb * share:g} GB cross-AZ)" if share > 0 else ""
    return Line(
        "Interface endpoints",
        f"{per} = {hours:,.0f} endpoint-h; {gb:g} GB{crossing}",
        hours * p["interface_endpoint_hour"]
        + gb * p["interface_endpoint_gb"]
        + gb * share * 2 * p["cross_az_gb"],
    )


def setup_egress(templates: Mapping[str, Template], p: Prices, a: Assumptions) -> Line:
    egresses = len(list(resources(templates, "Custom::TemporaryEgress")))
    hours = egresses * a.setups_per_month * a.setup_hours
    gb = egresses * a.setups_per_month * a.nat_gb_per_setup
    usd = hours * (p["nat_gateway_hour"] + p["public_ipv4_hour"]) + gb * p["nat_gateway_gb"]
    quantity = (
        f"{egresses} NAT + EIP x {hours:g} h ({a.setups_per_month:g} setup a month); {gb:g} GB"
        if egresses
        else "none (egress.mode none)"
    )
    return Line("Setup NAT + Elastic IP", quantity, usd)


def load_balancers(templates: Mapping[str, Template], p: Prices, a: Assumptions) -> Line:
    albs = [
        props
        for _, _, props in resources(templates, "AWS::ElasticLoadBalancingV2::LoadBalancer")
        if props.get("Type", "application") == "application"
    ]
    hours = len(albs) * a.hours_per_month
    lcu_hours = hours * a.alb_lcu
    return Line(
        "Application Load Balancer",
        f"{len(albs)} x {a.hours_per_month:g} h; {a.alb_lcu:g} LCU average "
        f"= {lcu_hours:,.0f} LCU-h",
        hours * p["alb_hour"] + lcu_hours * p["alb_lcu_hour"],
    )


def fargate_usd(svc: Service, count: int, p: Prices, a: Assumptions) -> tuple[float, str]:
    """The monthly cost of ``count`` tasks of ``svc``, and what it is made of."""
    prefix = "fargate_arm_" if svc.arm else "fargate_"
    task_hour = svc.vcpu * p[prefix + "vcpu_hour"] + svc.gb * p[prefix + "gb_hour"]
    on_demand, spot = split_tasks(count, svc.strategy)
    tasks = on_demand + spot * (1 - a.spot_discount)
    usd = tasks * task_hour * a.hours_per_month
    vcpu_hours = count * svc.vcpu * a.hours_per_month
    gb_hours = count * svc.gb * a.hours_per_month
    split = f"{on_demand:g} On-Demand + {spot:g} Spot"
    text = (
        f"{count} x {svc.vcpu:g} vCPU/{svc.gb:g} GB {'ARM64' if svc.arm else 'X86_64'} "
        f"({split}) = {vcpu_hours:,.0f} vCPU-h, {gb_hours:,.0f} GB-h"
    )
    return usd, text if count == svc.min_count else f"{count} ({split})"


def fargate(templates: Mapping[str, Template], p: Prices, a: Assumptions) -> tuple[Line, float]:
    """The Fargate line at min_count, and its cost at max_count."""
    low_usd, high_usd, texts = 0.0, 0.0, []
    for svc in services(templates):
        usd, text = fargate_usd(svc, svc.min_count, p, a)
        high, high_text = fargate_usd(svc, svc.max_count, p, a)
        low_usd, high_usd = low_usd + usd, high_usd + high
        texts.append(f"{text}; at max_count {high_text}: ${high:,.2f}")
    return Line("Fargate tasks (min_count)", "; ".join(texts) or "none", low_usd), high_usd


def load_client(templates: Mapping[str, Template], p: Prices, a: Assumptions) -> Line:
    usd, parts = 0.0, []
    for _, _, props in resources(templates, "AWS::EC2::Instance"):
        instance_type = props.get("InstanceType", "m1.small")
        try:
            hourly = p["ec2_hour"][instance_type]
        except KeyError:
            raise ValueError(
                f"no price for instance type {instance_type!r} in {PRICES_FILE.name}; "
                f"known: {', '.join(sorted(p['ec2_hour']))}"
            ) from None
        gib = sum(
            int(m.get("Ebs", {}).get("VolumeSize", 8)) for m in props.get("BlockDeviceMappings", [])
        )
        usd += hourly * a.hours_per_month + gib * p["ebs_gp3_gb_month"]
        parts.append(f"{instance_type} x {a.hours_per_month:g} h + {gib} GB gp3")
    quantity = "; ".join(parts) or "none (load_client.enabled false)"
    return Line("Load client (EC2 + EBS)", quantity, usd)


def kms_keys(templates: Mapping[str, Template], p: Prices, a: Assumptions) -> Line:
    keys = len(list(resources(templates, "AWS::KMS::Key")))
    return Line("KMS keys", f"{keys} keys", keys * p["kms_key_month"])


def container_logs(templates: Mapping[str, Template], p: Prices, a: Assumptions) -> Line:
    gb, stored, parts = 0.0, 0.0, []
    for svc in services(templates):
        monthly = svc.min_count * a.log_gb_per_task
        days = [_retention(templates, svc.stack_id, g) for g in svc.log_groups]
        kept = max((_months(d) for d in days), default=0.0)
        gb, stored = gb + monthly, stored + monthly * kept
        parts.append(
            f"{monthly:g} GB in ({len(svc.log_groups)} log groups), "
            f"{monthly * kept:,.0f} GB kept ({max((d or 0) for d in days) if days else 0} days)"
        )
    return Line(
        "CloudWatch Logs (containers)",
        "; ".join(parts) or "none",
        gb * p["logs_ingest_gb"] + stored * p["logs_storage_gb_month"],
    )


def flow_logs(templates: Mapping[str, Template], p: Prices, a: Assumptions) -> Line:
    gb, stored, parts = 0.0, 0.0, []
    for stack_id, _, props in resources(templates, "AWS::EC2::FlowLog"):
        if props.get("LogDestinationType", "cloud-watch-logs") != "cloud-watch-logs":
            continue
        days = _retention(templates, stack_id, _ref(props.get("LogGroupName")) or "")
        gb, stored = gb + a.flow_log_gb, stored + a.flow_log_gb * _months(days)
        parts.append(f"{a.flow_log_gb:g} GB in, {a.flow_log_gb * _months(days):,.0f} GB kept")
        parts[-1] += f" ({days} days)"
    return Line(
        "VPC flow logs",
        "; ".join(parts) or "none",
        gb * p["vended_logs_gb"] + stored * p["logs_storage_gb_month"],
    )


def container_insights(templates: Mapping[str, Template], p: Prices, a: Assumptions) -> Line:
    clusters = [
        props
        for _, _, props in resources(templates, "AWS::ECS::Cluster")
        if any(
            s.get("Name") == "containerInsights" and s.get("Value") in ("enabled", "enhanced")
            for s in props.get("ClusterSettings", [])
        )
    ]
    tasks = sum(svc.min_count for svc in services(templates)) if clusters else 0
    metrics = len(clusters) * a.insights_metrics
    gb = tasks * a.insights_gb_per_task
    return Line(
        "Container Insights",
        f"{metrics} metrics; {gb:g} GB of performance events" if clusters else "off",
        metrics * p["custom_metric_month"] + gb * p["logs_ingest_gb"],
    )


def alarms(templates: Mapping[str, Template], p: Prices, a: Assumptions) -> Line:
    own = len(list(resources(templates, "AWS::CloudWatch::Alarm")))
    tracking = sum(
        1
        for _, _, props in resources(templates, "AWS::ApplicationAutoScaling::ScalingPolicy")
        if props.get("PolicyType") == "TargetTrackingScaling"
    )
    count = own + 2 * tracking
    return Line(
        "CloudWatch alarms",
        f"{count}: {own} in the templates + 2 per target-tracking policy ({tracking})",
        count * p["alarm_month"],
    )


def estimate(
    environment: str,
    templates: Mapping[str, Template],
    *,
    region: str | None,
    prices: Mapping[str, Any],
    assumptions: Assumptions = Assumptions(),
    default_region: str | None = None,
) -> Estimate:
    """The monthly estimate of one environment from its templates (by stack id)."""
    price_region, note = price_table_region(prices, region, default_region)
    p = prices["regions"][price_region]
    fargate_line, fargate_max = fargate(templates, p, assumptions)
    lines = (
        interface_endpoints(templates, p, assumptions),
        setup_egress(templates, p, assumptions),
        load_balancers(templates, p, assumptions),
        fargate_line,
        load_client(templates, p, assumptions),
        kms_keys(templates, p, assumptions),
        container_logs(templates, p, assumptions),
        container_insights(templates, p, assumptions),
        flow_logs(templates, p, assumptions),
        alarms(templates, p, assumptions),
    )
    total = sum(line.usd for line in lines)
    return Estimate(
        environment=environment,
        region=region or "env-agnostic",
        price_region=price_region,
        price_note=note,
        lines=lines,
        max_total=total - fargate_line.usd + fargate_max,
    )


def price_table_region(
    prices: Mapping[str, Any], region: str | None, default_region: str | None = None
) -> tuple[str, str]:
    """Which table prices ``region`` (None: an env-agnostic stack), and a note saying so."""
    tables = prices["regions"]
    if region is None:
        chosen = default_region or prices["default_region"]
        if chosen not in tables:
            raise ValueError(_no_table(chosen, tables))
        return chosen, f"env-agnostic stacks priced with the {chosen} table"
    if region not in tables:
        raise ValueError(_no_table(region, tables))
    return region, f"{region} table"


def _no_table(region: str, tables: Mapping[str, Any]) -> str:
    return (
        f"no price table for {region}; tables: {', '.join(tables)} "
        f"(add one to tools/{PRICES_FILE.name})"
    )


def load_prices(path: Path = PRICES_FILE) -> dict[str, Any]:
    prices: dict[str, Any] = json.loads(path.read_text())
    return prices


# ---- output --------------------------------------------------------------------------------


def render(est: Estimate, researched: str) -> str:
    biggest = est.biggest
    rows = [
        f"### {est.environment}: {est.region} ({est.price_note}, prices of {researched})",
        "",
        "| Line | Quantity a month | USD a month |",
        "|---|---|---:|",
    ]
    for line in est.lines:
        name = f"**{line.name}** (biggest)" if line is biggest else line.name
        rows.append(f"| {name} | {line.quantity} | {line.usd:,.2f} |")
    rows.append(f"| **Total** | Fargate at min_count | **{est.total:,.2f}** |")
    share = biggest.usd / est.total if est.total else 0.0
    rows += [
        "",
        f"Biggest line: {biggest.name}, ${biggest.usd:,.2f} ({share:.0%} of the total). "
        f"With max_count tasks all month: ${est.max_total:,.2f}.",
    ]
    return "\n".join(rows)


def render_assumptions(assumptions: Assumptions) -> str:
    rows = ["Assumptions (tools/cost.py `Assumptions`):", ""]
    for f in dataclasses.fields(assumptions):
        rows.append(f"- `{f.name}` = {getattr(assumptions, f.name):g}: {f.metadata['doc']}")
    return "\n".join(rows)


# ---- the app's templates -----------------------------------------------------------------


@dataclass(frozen=True)
class StageTemplates:
    region: str | None
    templates: dict[str, dict[str, Any]]


def read_assembly(outdir: Path) -> dict[str, StageTemplates]:
    """The templates of each stage (environment) in a cloud assembly directory."""
    stages = {}
    for manifest_path in sorted(outdir.glob("assembly-*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        region: str | None = None
        templates = {}
        for artifact in manifest["artifacts"].values():
            if artifact["type"] != "aws:cloudformation:stack":
                continue
            stack_id = artifact.get("displayName", "").rsplit("/", 1)[-1]
            template_file = manifest_path.parent / artifact["properties"]["templateFile"]
            templates[stack_id] = json.loads(template_file.read_text())
            stack_region = artifact.get("environment", "").rsplit("/", 1)[-1]
            region = None if stack_region in ("", "unknown-region") else stack_region
        stages[manifest_path.parent.name.removeprefix("assembly-")] = StageTemplates(
            region, templates
        )
    return stages


def synthesize(outdir: Path) -> None:
    """Synthesize every environment of cdk.json into ``outdir`` (no cdk-nag, no CFN checks)."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    sys.path.insert(0, str(ROOT))
    # Imported here: aws-cdk-lib takes seconds to import, and --assembly does not need it.
    from aws_cdk import App  # noqa: PLC0415

    from stacks.config import ConfigError, load_environments  # noqa: PLC0415
    from stacks.stage import TracedFargateStage  # noqa: PLC0415

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    flags = {k: v for k, v in context.items() if k != "environments"}
    try:
        environments = load_environments(context["environments"])
    except ConfigError as error:
        raise ValueError(str(error)) from None
    app = App(context=flags, outdir=str(outdir), builtin_cloud_formation_validation=False)
    for env in environments:
        TracedFargateStage(app, config=env)
    app.synth()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A monthly estimate of each environment.")
    parser.add_argument("environments", nargs="*", help="environments to show (default: all)")
    parser.add_argument("--assembly", type=Path, help="read this cloud assembly (e.g. cdk.out)")
    parser.add_argument(
        "--region", help="price table for env-agnostic stacks (default: the table's default)"
    )
    args = parser.parse_args(argv)
    prices = load_prices()
    try:
        if args.assembly:
            stages = read_assembly(args.assembly)
        else:
            with tempfile.TemporaryDirectory(prefix="cdk-cost-") as tmp:
                synthesize(Path(tmp))
                stages = read_assembly(Path(tmp))
        selected = args.environments or list(stages)
        unknown = [name for name in selected if name not in stages]
        if unknown:
            print(f"unknown environment(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        estimates = [
            estimate(
                name,
                stage.templates,
                region=stage.region,
                prices=prices,
                default_region=args.region,
            )
            for name, stage in ((n, stages[n]) for n in selected)
        ]
    except ValueError as error:
        print(f"cost: {error}", file=sys.stderr)
        return 1
    tables = [render(e, prices["researched"]) for e in estimates]
    print("\n\n".join([*tables, render_assumptions(Assumptions())]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
