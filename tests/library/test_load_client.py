"""LoadClient: a closed-VPC instance booted by cfn-init, SSM-driven load tests, cdk-nag.

One app holds a real TracedFargateService with a client aimed at its load balancer, and a
Graviton client with every prop set, aimed at a literal URL through a stand-in security
group. The rendered ``loadtest`` script is run with a fake ``ab``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Duration, Environment, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from cdk_nag import AwsSolutionsChecks

from tests.conftest import new_app
from traced_fargate.closed_vpc import ClosedVpc
from traced_fargate.errors import InvalidPropsError
from traced_fargate.internal_load_balancer import InternalLoadBalancer
from traced_fargate.load_client import (
    CONCURRENCY_PATTERN,
    PATH_PATTERN,
    REQUESTS_PATTERN,
    LoadClient,
)
from traced_fargate.pull_through_cache import PullThroughCache
from traced_fargate.traced_fargate_service import TracedFargateService
from traced_fargate.traced_task_definition import TracedTaskDefinition
from traced_fargate.tracing import XRayDaemon

ENV = Environment(account="111111111111", region="eu-west-1")
ARM_TARGET = "http://10.0.0.10:8080"
SSM_CORE = {
    "Fn::Join": [
        "",
        ["arn:", {"Ref": "AWS::Partition"}, ":iam::aws:policy/AmazonSSMManagedInstanceCore"],
    ]
}
AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-"


@dataclass(frozen=True)
class Built:
    stack: Stack
    network: ClosedVpc
    service: TracedFargateService
    balancer: InternalLoadBalancer
    client: LoadClient
    arm: LoadClient
    stand_in: ec2.SecurityGroup
    cfn: dict[str, Any]
    assembly_dir: Path

    def id(self, construct: Any) -> str:
        child = getattr(construct.node, "default_child", None) or construct
        return str(self.stack.resolve(child.logical_id))

    def resource(self, construct: Any) -> dict[str, Any]:
        return dict(self.cfn["Resources"][self.id(construct)])

    def of_type(self, cfn_type: str) -> list[dict[str, Any]]:
        return [r for r in self.cfn["Resources"].values() if r["Type"] == cfn_type]

    def group_id(self, group: Any) -> dict[str, Any]:
        return {"Fn::GetAtt": [self.id(group), "GroupId"]}


def _balancer(service: TracedFargateService) -> InternalLoadBalancer:
    assert service.load_balancer is not None
    return service.load_balancer


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    app = new_app(outdir=str(tmp_path_factory.mktemp("load-client")))
    stack = Stack(app, "Lib", env=ENV)
    network = ClosedVpc(stack, "Network")
    cache = PullThroughCache(stack, "Cache", repository_prefix="lib-cache")
    task = TracedTaskDefinition(
        stack,
        "Task",
        app_image=ecs.ContainerImage.from_registry("public.ecr.aws/docker/library/python:3.13"),
        tracing=XRayDaemon(pull_through_cache=cache),
    )
    service = TracedFargateService(stack, "Service", task_definition=task, vpc=network)
    client = LoadClient(stack, "Client", network=network, target_url=service.url)
    service.allow_http_from(client)

    arm = LoadClient(
        stack,
        "ArmClient",
        network=network,
        target_url=ARM_TARGET,
        instance_type=ec2.InstanceType("t4g.nano"),
        signal_timeout=Duration.minutes(45),
        default_requests=5000,
        default_concurrency=50,
    )
    stand_in = ec2.SecurityGroup(stack, "StandIn", vpc=network.vpc, allow_all_outbound=False)
    # Through jsii: the client must be a real IConnectable, not just duck-typed.
    stand_in.connections.allow_from(arm, ec2.Port.tcp(8080), "Load to the stand-in")

    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    # Raises on any unacknowledged nag finding.
    assembly = app.synth()
    return Built(
        stack=stack,
        network=network,
        service=service,
        balancer=_balancer(service),
        client=client,
        arm=arm,
        stand_in=stand_in,
        cfn=assembly.get_stack_by_name("Lib").template,
        assembly_dir=Path(assembly.directory),
    )


def _props(built: Built, client: LoadClient) -> dict[str, Any]:
    return dict(built.resource(client.instance)["Properties"])


def _init(built: Built, client: LoadClient) -> dict[str, Any]:
    metadata = built.resource(client.instance)["Metadata"]
    config: dict[str, Any] = metadata["AWS::CloudFormation::Init"]["config"]
    return config


def _text(value: Any) -> str:
    """A rendered string: literals kept, every intrinsic shown as <intrinsic>."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(_text(p) for p in value["Fn::Join"][1])
    return f"<{json.dumps(value, sort_keys=True)}>"


def _dns_name(built: Built) -> str:
    return _text(built.stack.resolve(built.balancer.load_balancer.load_balancer_dns_name))


# --- the instance ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["client", "arm"])
def test_instance_runs_in_an_isolated_subnet_without_public_address(
    built: Built, name: str
) -> None:
    props = _props(built, getattr(built, name))
    isolated = {built.id(s) for s in built.network.vpc.isolated_subnets}
    assert props["SubnetId"]["Ref"] in isolated
    assert "NetworkInterfaces" not in props
    assert "AssociatePublicIpAddress" not in json.dumps(props)
    assert props["SecurityGroupIds"] == [built.group_id(getattr(built, name).security_group)]


def test_instance_has_a_profile_of_its_role_and_no_key_pair(built: Built) -> None:
    props = _props(built, built.client)
    assert "KeyName" not in props
    profile_id = props["IamInstanceProfile"]["Ref"]
    profile = built.cfn["Resources"][profile_id]
    assert profile["Properties"]["Roles"] == [{"Ref": built.id(built.client.role)}]


def test_imdsv2_is_required_through_the_launch_template(built: Built) -> None:
    props = _props(built, built.client)
    template_id = props["LaunchTemplate"]["Version"]["Fn::GetAtt"][0]
    launch_template = built.cfn["Resources"][template_id]
    assert launch_template["Type"] == "AWS::EC2::LaunchTemplate"
    assert launch_template["Properties"]["LaunchTemplateData"] == {
        "MetadataOptions": {"HttpTokens": "required"}
    }


def test_root_volume_is_encrypted_gp3_and_monitoring_is_detailed(built: Built) -> None:
    props = _props(built, built.client)
    assert props["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {"Encrypted": True, "VolumeSize": 16, "VolumeType": "gp3"},
        }
    ]
    assert props["Monitoring"] is True
    assert props["InstanceType"] == "t3.micro"
    assert "DisableApiTermination" not in props


@pytest.mark.parametrize(("name", "arch"), [("client", "x86_64"), ("arm", "arm64")])
def test_image_is_the_latest_standard_al2023_of_the_instance_architecture(
    built: Built, name: str, arch: str
) -> None:
    image_parameter = _props(built, getattr(built, name))["ImageId"]["Ref"]
    parameter = built.cfn["Parameters"][image_parameter]
    assert parameter == {
        "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
        "Default": AL2023 + arch,
    }


@pytest.mark.parametrize(("name", "timeout"), [("client", "PT20M"), ("arm", "PT45M")])
def test_stack_waits_for_one_signal_within_the_signal_timeout(
    built: Built, name: str, timeout: str
) -> None:
    instance = built.resource(getattr(built, name).instance)
    assert instance["CreationPolicy"] == {"ResourceSignal": {"Count": 1, "Timeout": timeout}}


def test_user_data_runs_cfn_init_and_signals_its_exit_code(built: Built) -> None:
    user_data = _text(_props(built, built.client)["UserData"]["Fn::Base64"])
    resource = f"--resource {built.id(built.client.instance)}"
    assert "/opt/aws/bin/cfn-init -v --region" in user_data
    assert f"{resource} -c default\n" in user_data
    assert "/opt/aws/bin/cfn-signal -e $? --region" in user_data
    assert user_data.count(resource) == 2
    # A changed boot configuration changes the user data, hence the instance's logical
    # id: CloudFormation replaces the instance instead of leaving cfn-init's work stale.
    assert "\n# fingerprint: " in user_data
    assert re.fullmatch(r"ClientInstance[0-9A-F]{8}[0-9a-f]{16}", built.id(built.client.instance))


# --- cfn-init -------------------------------------------------------------------


def test_cfn_init_installs_apache_bench_and_writes_two_files(built: Built) -> None:
    config = _init(built, built.client)
    assert config["packages"] == {"yum": {"httpd-tools": []}}
    assert set(config["files"]) == {"/usr/local/bin/loadtest", "/etc/traced-fargate/target"}
    script = config["files"]["/usr/local/bin/loadtest"]
    assert {k: v for k, v in script.items() if k != "content"} == {
        "encoding": "plain",
        "mode": "000755",
        "owner": "root",
        "group": "root",
    }
    assert config["files"]["/etc/traced-fargate/target"]["mode"] == "000644"


def test_the_load_balancer_token_is_joined_into_both_files(built: Built) -> None:
    files = _init(built, built.client)["files"]
    dns = _dns_name(built)
    get_dns = {"Fn::GetAtt": [built.id(built.balancer.load_balancer), "DNSName"]}
    assert dns == f"<{json.dumps(get_dns)}>"
    # The token goes into a parameter of the client's stack (a property); the files read it
    # back with a same-stack GetAtt: a cross-stack value is not documented in Metadata.
    assert built.client.target_parameter is not None
    parameter = built.resource(built.client.target_parameter)["Properties"]
    assert _text(parameter["Value"]) == f"http://{dns}"
    value = f"<{json.dumps({'Fn::GetAtt': [built.id(built.client.target_parameter), 'Value']})}>"
    assert _text(files["/etc/traced-fargate/target"]["content"]) == f"{value}\n"
    script = files["/usr/local/bin/loadtest"]["content"]
    assert "Fn::Join" in script
    assert f"\ntarget='{value}'\n" in _text(script)
    instance = built.resource(built.client.instance)
    assert built.id(built.client.target_parameter) in instance["DependsOn"]


def test_a_literal_target_and_the_defaults_are_written_as_plain_text(built: Built) -> None:
    script = _init(built, built.arm)["files"]["/usr/local/bin/loadtest"]["content"]
    assert isinstance(script, str)
    assert f"\ntarget='{ARM_TARGET}'\nrequests=5000\nconcurrency=50\n" in script
    target = _init(built, built.arm)["files"]["/etc/traced-fargate/target"]["content"]
    assert target == f"{ARM_TARGET}\n"
    assert built.arm.target_parameter is None


# --- security group and role ----------------------------------------------------


def _rules(built: Built, cfn_type: str, group: ec2.SecurityGroup) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in r["Properties"].items() if k != "GroupId"}
        for r in built.of_type(cfn_type)
        if r["Properties"]["GroupId"] == built.group_id(group)
    ]


def _to_s3_gateway(built: Built) -> dict[str, Any]:
    return {
        "Description": "HTTPS to the S3 gateway",
        "DestinationPrefixListId": built.stack.resolve(built.network.s3_prefix_list_id),
        "FromPort": 443,
        "IpProtocol": "tcp",
        "ToPort": 443,
    }


def _to(built: Built, group: Any, port: int, description: str) -> dict[str, Any]:
    return {
        "Description": description,
        "DestinationSecurityGroupId": built.group_id(group),
        "FromPort": port,
        "IpProtocol": "tcp",
        "ToPort": port,
    }


@pytest.mark.parametrize("name", ["client", "arm"])
def test_security_group_has_no_ingress_at_all(built: Built, name: str) -> None:
    group = getattr(built, name).security_group
    assert "SecurityGroupIngress" not in built.resource(group)["Properties"]
    assert _rules(built, "AWS::EC2::SecurityGroupIngress", group) == []


def test_egress_is_https_and_the_granted_http_only(built: Built) -> None:
    endpoints = built.network.endpoint_security_group
    lb_group = built.balancer.security_group
    # Inline only the rule that matches no traffic: nothing to 0.0.0.0/0, S3 only by its
    # prefix list.
    assert built.resource(built.client.security_group)["Properties"]["SecurityGroupEgress"] == [
        {
            "CidrIp": "255.255.255.255/32",
            "Description": "Disallow all traffic",
            "FromPort": 252,
            "IpProtocol": "icmp",
            "ToPort": 86,
        }
    ]
    egress = _rules(built, "AWS::EC2::SecurityGroupEgress", built.client.security_group)
    assert sorted(egress, key=json.dumps) == sorted(
        [
            _to(built, endpoints, 443, "Load client to AWS endpoints"),
            _to_s3_gateway(built),
            _to(built, lb_group, 80, "HTTP to the internal load balancer"),
        ],
        key=json.dumps,
    )
    arm_egress = _rules(built, "AWS::EC2::SecurityGroupEgress", built.arm.security_group)
    assert sorted(arm_egress, key=json.dumps) == sorted(
        [
            _to(built, endpoints, 443, "Load client to AWS endpoints"),
            _to_s3_gateway(built),
            _to(built, built.stand_in, 8080, "Load to the stand-in"),
        ],
        key=json.dumps,
    )


def test_the_endpoints_and_the_load_balancer_accept_the_client(built: Built) -> None:
    client_group = built.group_id(built.client.security_group)
    for group, port in [
        (built.network.endpoint_security_group, 443),
        (built.balancer.security_group, 80),
    ]:
        ingress = _rules(built, "AWS::EC2::SecurityGroupIngress", group)
        assert [
            (r["FromPort"], r["ToPort"])
            for r in ingress
            if r.get("SourceSecurityGroupId") == client_group
        ] == [(port, port)]


def test_role_has_the_ssm_core_policy_and_only_its_own_signal(built: Built) -> None:
    role = built.resource(built.client.role)["Properties"]
    assert role["ManagedPolicyArns"] == [SSM_CORE]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
        }
    ]
    assert "Policies" not in role
    role_ref = {"Ref": built.id(built.client.role)}
    statements = [
        s
        for p in built.of_type("AWS::IAM::Policy")
        if role_ref in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert statements == [
        {
            "Action": ["cloudformation:DescribeStackResource", "cloudformation:SignalResource"],
            "Effect": "Allow",
            "Resource": {"Ref": "AWS::StackId"},
        }
    ]
    actions = [
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert not any("*" in a for a in actions)


# --- the SSM document -----------------------------------------------------------


def _document(built: Built, client: LoadClient) -> dict[str, Any]:
    resource = built.resource(client.load_test_document)
    assert resource["Properties"]["DocumentType"] == "Command"
    content: dict[str, Any] = resource["Properties"]["Content"]
    return content


def test_document_runs_loadtest_with_every_parameter_quoted(built: Built) -> None:
    content = _document(built, built.client)
    assert content["schemaVersion"] == "2.2"
    (step,) = content["mainSteps"]
    assert step["action"] == "aws:runShellScript"
    assert step["inputs"] == {
        "runCommand": [
            "/usr/local/bin/loadtest -n '{{ requests }}' -c '{{ concurrency }}' '{{ path }}'"
        ],
        "timeoutSeconds": "3600",
    }


@pytest.mark.parametrize(
    ("name", "requests", "concurrency"), [("client", "100", "1"), ("arm", "5000", "50")]
)
def test_document_parameters_are_patterned_strings_with_the_defaults(
    built: Built, name: str, requests: str, concurrency: str
) -> None:
    parameters = _document(built, getattr(built, name))["parameters"]
    assert {k: (v["type"], v["default"], v["allowedPattern"]) for k, v in parameters.items()} == {
        "requests": ("String", requests, REQUESTS_PATTERN),
        "concurrency": ("String", concurrency, CONCURRENCY_PATTERN),
        "path": ("String", "/", PATH_PATTERN),
    }
    assert all(v["description"] for v in parameters.values())


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        (REQUESTS_PATTERN, "0"),
        (REQUESTS_PATTERN, "010"),
        (REQUESTS_PATTERN, "10000000"),
        (REQUESTS_PATTERN, "1e3"),
        (REQUESTS_PATTERN, "1;id"),
        (REQUESTS_PATTERN, ""),
        (CONCURRENCY_PATTERN, "10000"),
        (CONCURRENCY_PATTERN, "-1"),
        (PATH_PATTERN, "work"),
        (PATH_PATTERN, "/;reboot"),
        (PATH_PATTERN, "/$(id)"),
        (PATH_PATTERN, "/`id`"),
        (PATH_PATTERN, "/a b"),
        (PATH_PATTERN, "/'"),
        (PATH_PATTERN, '/"'),
        (PATH_PATTERN, "/a|b"),
        (PATH_PATTERN, "/a>b"),
        (PATH_PATTERN, "/a\nb"),
    ],
)
def test_patterns_reject_what_a_shell_could_misread(pattern: str, value: str) -> None:
    assert re.search(pattern, value) is None


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        (REQUESTS_PATTERN, "1"),
        (REQUESTS_PATTERN, "1000000"),
        (CONCURRENCY_PATTERN, "1000"),
        (PATH_PATTERN, "/"),
        (PATH_PATTERN, "/work?n=1000&x=a_b-c.d"),
    ],
)
def test_patterns_accept_real_values(pattern: str, value: str) -> None:
    assert re.search(pattern, value)


def test_cli_helpers_name_the_instance_and_the_document(built: Built) -> None:
    instance = {"Ref": built.id(built.client.instance)}
    document = {"Ref": built.id(built.client.load_test_document)}
    resolve = built.stack.resolve
    assert resolve(built.client.instance_id) == instance
    assert resolve(built.client.load_test_document_name) == document
    assert _text(resolve(built.client.start_session_command)) == (
        f"aws ssm start-session --target <{json.dumps(instance)}>"
    )
    assert _text(resolve(built.client.send_command_example)) == (
        f"aws ssm send-command --document-name <{json.dumps(document)}>"
        f" --targets Key=InstanceIds,Values=<{json.dumps(instance)}>"
        " --parameters requests=100,concurrency=8"
    )


# --- the loadtest script, run with a fake ab ------------------------------------

Run = Callable[..., tuple[int, list[str] | None, str]]


@pytest.fixture(scope="module")
def loadtest(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Runs the arm client's rendered script; returns exit code, ab's argv and stderr."""
    root = tmp_path_factory.mktemp("loadtest")
    script = root / "loadtest"
    script.write_text(_init(built, built.arm)["files"]["/usr/local/bin/loadtest"]["content"])
    script.chmod(0o755)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    fake_ab = bin_dir / "ab"
    fake_ab.write_text(
        "#!/bin/bash\n"
        'printf "%s\\n" "$@" > "$AB_ARGS"\n'
        'printf "%b" "$AB_OUTPUT"\n'
        'exit "$AB_STATUS"\n'
    )
    fake_ab.chmod(0o755)

    def run(
        *args: str, output: str = "Failed requests:        0\n", status: int = 0
    ) -> tuple[int, list[str] | None, str]:
        ab_args = root / "ab-args"
        ab_args.unlink(missing_ok=True)
        env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "AB_ARGS": str(ab_args),
            "AB_OUTPUT": output,
            "AB_STATUS": str(status),
        }
        done = subprocess.run(
            [str(script), *args], env=env, capture_output=True, text=True, check=False, timeout=10
        )
        called = ab_args.read_text().splitlines() if ab_args.exists() else None
        return done.returncode, called, done.stderr

    return run


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["-l", "-n", "5000", "-c", "50", f"{ARM_TARGET}/"]),
        (
            ("-n", "10", "-c", "2", "/work?n=5&x=1"),
            ["-l", "-n", "10", "-c", "2", f"{ARM_TARGET}/work?n=5&x=1"],
        ),
        (("-n", "1000000", "-c", "1000"), ["-l", "-n", "1000000", "-c", "1000", f"{ARM_TARGET}/"]),
        (("-c", "7", "/healthz"), ["-l", "-n", "5000", "-c", "7", f"{ARM_TARGET}/healthz"]),
    ],
)
def test_script_runs_ab_against_the_target(
    loadtest: Run, args: tuple[str, ...], expected: list[str]
) -> None:
    code, called, _ = loadtest(*args)
    assert (code, called) == (0, expected)


@pytest.mark.parametrize(
    "args",
    [
        ("-n", "0"),
        ("-n", "010"),
        ("-n", "1000001"),
        ("-n", "abc"),
        ("-n", "5\n"),
        ("-c", "1001"),
        ("-n", "4", "-c", "5"),
        ("work",),
        ("/$(id)",),
        ("/a b",),
        ("/", "/extra"),
        ("-x",),
    ],
)
def test_script_refuses_bad_arguments_without_running_ab(
    loadtest: Run, args: tuple[str, ...]
) -> None:
    code, called, stderr = loadtest(*args)
    assert (code, called) == (2, None)
    assert "usage: loadtest" in stderr


@pytest.mark.parametrize(
    ("output", "status"),
    [
        ("apr_socket_recv: Connection refused (111)\n", 1),
        ("Failed requests:        3\n   (Connect: 0, Receive: 0, Length: 0, Exceptions: 3)\n", 0),
        ("Failed requests:        0\nNon-2xx responses:      12\n", 0),
    ],
)
def test_script_fails_when_ab_or_a_request_fails(loadtest: Run, output: str, status: int) -> None:
    code, called, _ = loadtest(output=output, status=status)
    assert called is not None
    assert code == 1


# --- prop validation ------------------------------------------------------------

_ids = itertools.count()


@pytest.fixture(scope="module")
def scratch() -> tuple[Stack, ClosedVpc]:
    """Never synthesized: a rejected client leaves only its empty node behind."""
    stack = Stack(new_app(), "Scratch", env=ENV)
    return stack, ClosedVpc(stack, "Network")


def _client(scratch: tuple[Stack, ClosedVpc], **props: Any) -> LoadClient:
    stack, network = scratch
    props.setdefault("target_url", "http://load-balancer.internal")
    return LoadClient(stack, f"Client{next(_ids)}", network=network, **props)


@pytest.mark.parametrize(
    ("props", "prop"),
    [
        ({"default_requests": 0}, "default_requests"),
        ({"default_requests": 1_000_001}, "default_requests"),
        ({"default_requests": True}, "default_requests"),
        ({"default_requests": 2.5}, "default_requests"),
        ({"default_concurrency": 0}, "default_concurrency"),
        ({"default_concurrency": 1001, "default_requests": 5000}, "default_concurrency"),
        ({"default_concurrency": 20, "default_requests": 10}, "default_concurrency"),
        ({"signal_timeout": Duration.seconds(30)}, "signal_timeout"),
        ({"signal_timeout": Duration.hours(13)}, "signal_timeout"),
        ({"target_url": "10.0.0.1"}, "target_url"),
        ({"target_url": "http://host/"}, "target_url"),
        ({"target_url": "http://host/path"}, "target_url"),
        ({"target_url": "ftp://host"}, "target_url"),
        ({"target_url": "http://a'b"}, "target_url"),
        ({"target_url": "http://host\n"}, "target_url"),
    ],
)
def test_invalid_props_are_rejected_by_name(
    scratch: tuple[Stack, ClosedVpc], props: dict[str, Any], prop: str
) -> None:
    with pytest.raises(InvalidPropsError) as error:
        _client(scratch, **props)
    (problem,) = error.value.problems
    assert problem.startswith(f"{prop}: ")


def test_every_problem_is_reported_with_the_construct_path(
    scratch: tuple[Stack, ClosedVpc],
) -> None:
    with pytest.raises(InvalidPropsError) as error:
        _client(
            scratch,
            target_url="host",
            signal_timeout=Duration.seconds(1),
            default_requests=0,
            default_concurrency=0,
        )
    lines = str(error.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "target_url",
        "signal_timeout",
        "default_requests",
        "default_concurrency",
    ]
    assert all(line.startswith(f"{error.value.construct}: ") for line in lines)
    assert error.value.construct.startswith("Scratch/Client")


def test_bounds_are_accepted(scratch: tuple[Stack, ClosedVpc]) -> None:
    client = _client(
        scratch,
        target_url="https://10.0.0.1:8443",
        signal_timeout=Duration.hours(12),
        default_requests=1_000_000,
        default_concurrency=1000,
    )
    assert client.target_url == "https://10.0.0.1:8443"


# --- cdk-nag --------------------------------------------------------------------


def test_nag_passes_with_only_the_two_narrow_acknowledgments(built: Built) -> None:
    # The module's synth ran with AwsSolutionsChecks registered: an open finding would
    # have failed it. What remains to check is that nothing was waved through broadly.
    report = json.loads((built.assembly_dir / "validation-report.json").read_text())
    assert report["pluginReports"] == []
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    for client in (built.client, built.arm):
        acknowledged = {
            (c.node.path, rule_id.removeprefix("Annotation::")): reason
            for c in client.node.find_all()
            for m in c.node.metadata
            if m.type == key
            for rule_id, reason in m.data.items()
            if rule_id.startswith("Annotation::AwsSolutions-")
        }
        path = client.node.path
        assert set(acknowledged) == {
            (
                f"{path}/Role",
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                "AmazonSSMManagedInstanceCore]",
            ),
            (f"{path}/Instance", "AwsSolutions-EC29"),
        }
        assert all(len(reason) > 60 for reason in acknowledged.values())
