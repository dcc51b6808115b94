"""An EC2 instance in the closed VPC that drives HTTP load at the service, reached with SSM."""

from __future__ import annotations

import re

import jsii
from aws_cdk import Acknowledgment, Duration, Token, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from traced_fargate._security_groups import keep_closed
from traced_fargate.closed_vpc import ClosedVpc, closed_vpc_problems
from traced_fargate.errors import raise_if_problems

LOADTEST_PATH = "/usr/local/bin/loadtest"
TARGET_FILE = "/etc/traced-fargate/target"

MAX_REQUESTS = 1_000_000
MAX_CONCURRENCY = 1000
LOAD_TEST_TIMEOUT = Duration.hours(1)
"""How long one run of the SSM document may take before Run Command stops it."""

# The same patterns guard the SSM document's parameters and the script's arguments. None
# admits a quote, space, ``$`` or backtick. The document still quotes every parameter:
# ``&`` and ``?`` mean something to a shell, and a regex ``$`` also matches before a
# trailing newline, which unquoted would end the command line.
REQUESTS_PATTERN = r"^[1-9][0-9]{0,6}$"
CONCURRENCY_PATTERN = r"^[1-9][0-9]{0,3}$"
PATH_PATTERN = r"^/[A-Za-z0-9/_.?=&-]*$"
_LOAD_TEST_COMMAND = LOADTEST_PATH + " -n '{{ requests }}' -c '{{ concurrency }}' '{{ path }}'"

# A literal target is written into the script between single quotes.
_LITERAL_TARGET = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")

# The root volume may not be smaller than the AMI's 8 GiB snapshot; the rest is headroom
# for the image growing.
_ROOT_VOLUME_GIB = 16
_MAX_SIGNAL_TIMEOUT = Duration.hours(12)  # CloudFormation's limit for a creation policy

_SSM_CORE = "AmazonSSMManagedInstanceCore"


@jsii.implements(ec2.IConnectable)
class LoadClient(Construct):
    """An instance in an isolated subnet of a :class:`ClosedVpc` with Apache Bench and a
    ``loadtest`` script aimed at one HTTP target, driven through SSM Run Command or used
    interactively through Session Manager.

    The instance accepts no inbound traffic and has no key pair. Its only way out is HTTPS
    to the VPC's interface endpoints and S3 gateway (cfn-init reaches CloudFormation through
    the ``cloudformation`` endpoint; dnf reads the Amazon Linux repositories through the S3
    gateway), plus what callers grant, e.g. ``service.allow_http_from(client)``.

    At boot cfn-init installs ``httpd-tools`` and writes:

    - ``/usr/local/bin/loadtest [-n requests] [-c concurrency] [path]``: runs
      ``ab`` against ``<target_url><path>``; exits non-zero when ``ab`` fails or any
      request fails or gets a non-2xx answer.
    - ``/etc/traced-fargate/target``: the target URL.

    The stack waits for cfn-init's signal. The image is the latest Amazon Linux 2023 at
    each deploy, and any change to the boot configuration replaces the instance: nothing
    on it is meant to last.

    Children (construct ids are stable): ``SecurityGroup``, ``Role``, ``TargetUrl`` (when
    ``target_url`` is a token), ``Instance`` and
    ``LoadTestDocument``, an SSM Command document that runs ``loadtest`` with the
    parameters ``requests``, ``concurrency`` and ``path``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: ClosedVpc,
        target_url: str,
        instance_type: ec2.InstanceType | None = None,
        signal_timeout: Duration | None = None,
        default_requests: int = 100,
        default_concurrency: int = 1,
        default_path: str = "/",
    ) -> None:
        """
        :param network: the closed VPC; the instance runs in one of its workload subnets
            and is granted its interface endpoints.
        :param target_url: ``http(s)://host[:port]`` the load goes to, without a trailing
            ``/``, e.g. :attr:`traced_fargate.TracedFargateService.url`; a deploy-time
            token is fine.
        :param instance_type: Default: t3.micro. A Graviton type gets the arm64 image.
        :param signal_timeout: how long CloudFormation waits for cfn-init to report
            success, 1 minute to 12 hours. Default: 20 minutes.
        :param default_requests: requests per run when none are given, 1 to 1,000,000.
            Default: 100.
        :param default_concurrency: concurrent requests when none are given, 1 to 1000
            and at most ``default_requests``. Default: 1.
        :param default_path: path and query appended to the target when none is given,
            e.g. ``/chain``. Default: ``/``.
        """
        super().__init__(scope, construct_id)
        raise_if_problems(self.node.path, closed_vpc_problems("network", network))
        instance_type = instance_type or ec2.InstanceType.of(
            ec2.InstanceClass.T3, ec2.InstanceSize.MICRO
        )
        signal_timeout = signal_timeout or Duration.minutes(20)
        raise_if_problems(
            self.node.path,
            _target_problems(target_url)
            + _signal_timeout_problems(signal_timeout)
            + _default_count_problems(default_requests, default_concurrency)
            + _default_path_problems(default_path),
        )
        self.target_url = target_url
        """The URL the load goes to, as given."""

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=network.vpc,
            description="Load client: no inbound; HTTPS to AWS endpoints, HTTP to granted targets",
            allow_all_outbound=False,
        )
        """The instance's security group: no ingress, egress only as granted."""
        keep_closed(self.security_group)

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="Load client: SSM management and its own cfn-init signal",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(_SSM_CORE)],
        )
        """The instance role; grant it more to let load tests call AWS services."""
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{_SSM_CORE}]",
                reason="The AWS-maintained baseline for the SSM agent (Session Manager, Run "
                "Command, inventory); AWS updates it with the agent's API calls, which a "
                "copied inline policy would miss. The role carries nothing else but the "
                "cfn-init read and signal on its own stack.",
            )
        )

        # cfn-init reads its files from the instance's Metadata, where a cross-stack value
        # (Fn::GetStackOutput, Fn::ImportValue) is not documented to resolve: the
        # Fn::GetStackOutput page lists resource property values only, and not inside
        # Fn::Base64, so not in user data either
        # (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-getstackoutput.html).
        # A parameter of this stack takes a token target as a property; the Metadata reads
        # it back with a same-stack Fn::GetAtt, which Metadata supports.
        boot_target = target_url
        self.target_parameter: ssm.StringParameter | None = None
        """The SSM parameter holding a token ``target_url``; None for a literal one."""
        if Token.is_unresolved(target_url):
            self.target_parameter = ssm.StringParameter(
                self,
                "TargetUrl",
                string_value=target_url,
                description="The URL the load client drives load at",
            )
            boot_target = self.target_parameter.string_value

        self.instance = ec2.Instance(
            self,
            "Instance",
            vpc=network.vpc,
            vpc_subnets=network.workload_subnets,
            instance_type=instance_type,
            machine_image=ec2.MachineImage.latest_amazon_linux2023(
                cpu_type=(
                    ec2.AmazonLinuxCpuType.ARM_64
                    if instance_type.architecture == ec2.InstanceArchitecture.ARM_64
                    else ec2.AmazonLinuxCpuType.X86_64
                ),
            ),
            security_group=self.security_group,
            role=self.role,
            require_imdsv2=True,
            detailed_monitoring=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        _ROOT_VOLUME_GIB,
                        encrypted=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                    ),
                )
            ],
            init=ec2.CloudFormationInit.from_elements(
                ec2.InitPackage.yum("httpd-tools"),
                ec2.InitFile.from_string(TARGET_FILE, f"{boot_target}\n"),
                ec2.InitFile.from_string(
                    LOADTEST_PATH,
                    _loadtest_script(
                        boot_target, default_requests, default_concurrency, default_path
                    ),
                    mode="000755",
                ),
            ),
            init_options=ec2.ApplyCloudFormationInitOptions(timeout=signal_timeout),
        )
        """The ``ec2.Instance``."""
        if self.target_parameter is not None:
            self.instance.node.add_dependency(self.target_parameter)
        Validations.of(self.instance).acknowledge(
            Acknowledgment(
                id="AwsSolutions-EC29",
                reason="A disposable test client holding no data: a changed image or boot "
                "configuration must replace it, which termination protection would block.",
            )
        )
        network.allow_endpoints_from(self, "Load client to AWS endpoints")

        self.load_test_document = ssm.CfnDocument(
            self,
            "LoadTestDocument",
            document_type="Command",
            content=_load_test_document(default_requests, default_concurrency, default_path),
        )
        """The SSM Command document that runs ``loadtest`` on the instance."""

    @property
    def connections(self) -> ec2.Connections:
        """The instance's security group, for grants such as ``allow_http_from(client)``."""
        return self.security_group.connections

    @property
    def instance_id(self) -> str:
        """The instance id (a token)."""
        return self.instance.instance_id

    @property
    def load_test_document_name(self) -> str:
        """Name CloudFormation gave the SSM document (a token)."""
        return self.load_test_document.ref

    @property
    def start_session_command(self) -> str:
        """AWS CLI command that opens a shell on the instance through Session Manager."""
        return f"aws ssm start-session --target {self.instance_id}"

    @property
    def send_command_example(self) -> str:
        """AWS CLI command that runs one load test through Run Command."""
        return (
            f"aws ssm send-command --document-name {self.load_test_document_name}"
            f" --targets Key=InstanceIds,Values={self.instance_id}"
            " --parameters requests=100,concurrency=8"
        )


def _loadtest_script(target_url: str, requests: int, concurrency: int, default_path: str) -> str:
    return f"""#!/bin/bash
# Drives HTTP load at the traced service; the traces show up in X-Ray.
set -euo pipefail

target='{target_url}'
requests={requests}
concurrency={concurrency}

usage() {{
  echo "usage: loadtest [-n requests] [-c concurrency] [path]" >&2
  echo "  requests 1-{MAX_REQUESTS}, concurrency 1-{MAX_CONCURRENCY} and at most requests," >&2
  echo "  path like /work?n=1000 (default {default_path}); target $target" >&2
  exit 2
}}

while getopts "n:c:h" option; do
  case "$option" in
    n) requests="$OPTARG" ;;
    c) concurrency="$OPTARG" ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -le 1 ]] || usage
path="${{1:-{default_path}}}"

requests_pattern='{REQUESTS_PATTERN}'
concurrency_pattern='{CONCURRENCY_PATTERN}'
path_pattern='{PATH_PATTERN}'
# The patterns rule out leading zeros, which bash arithmetic would read as octal.
[[ $requests =~ $requests_pattern ]] && ((requests <= {MAX_REQUESTS})) || usage
[[ $concurrency =~ $concurrency_pattern ]] && ((concurrency <= {MAX_CONCURRENCY})) || usage
((concurrency <= requests)) || usage
[[ $path =~ $path_pattern ]] || usage

report="$(mktemp)"
trap 'rm -f "$report"' EXIT
# -l: the app's responses vary in length, which ab would otherwise count as failures.
ab -l -n "$requests" -c "$concurrency" "$target$path" | tee "$report"
if grep -Eq '^(Failed requests: +[1-9]|Non-2xx responses:)' "$report"; then
  echo "loadtest: some requests failed or got a non-2xx answer" >&2
  exit 1
fi
"""


def _load_test_document(requests: int, concurrency: int, path: str) -> dict[str, object]:
    return {
        "schemaVersion": "2.2",
        "description": "Runs Apache Bench from the load client against the traced service.",
        "parameters": {
            "requests": {
                "type": "String",
                "description": f"Number of requests, 1 to {MAX_REQUESTS}.",
                "default": str(requests),
                "allowedPattern": REQUESTS_PATTERN,
            },
            "concurrency": {
                "type": "String",
                "description": f"Requests in flight at once, 1 to {MAX_CONCURRENCY} "
                "and at most the number of requests.",
                "default": str(concurrency),
                "allowedPattern": CONCURRENCY_PATTERN,
            },
            "path": {
                "type": "String",
                "description": "Path and query appended to the target URL, e.g. /work?n=1000.",
                "default": path,
                "allowedPattern": PATH_PATTERN,
            },
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "loadTest",
                "inputs": {
                    "runCommand": [_LOAD_TEST_COMMAND],
                    "timeoutSeconds": str(int(LOAD_TEST_TIMEOUT.to_seconds())),
                },
            }
        ],
    }


def _default_path_problems(path: object) -> list[str]:
    if isinstance(path, str) and re.fullmatch(PATH_PATTERN.strip("^$"), path):
        return []
    return [
        f"default_path: {path!r} is not allowed; expected a path starting with / of "
        "A-Z a-z 0-9 / _ . ? = & -"
    ]


def _target_problems(target_url: str) -> list[str]:
    if Token.is_unresolved(target_url) or _LITERAL_TARGET.fullmatch(target_url):
        return []
    return [
        f"target_url: {target_url!r} is not allowed; expected http(s)://host[:port] "
        "with no path or trailing /"
    ]


def _signal_timeout_problems(timeout: Duration) -> list[str]:
    if timeout.is_unresolved():
        return []
    if not 60 <= timeout.to_seconds() <= _MAX_SIGNAL_TIMEOUT.to_seconds():
        return [
            f"signal_timeout: {timeout.to_human_string()} is not allowed; "
            "expected 1 minute to 12 hours"
        ]
    return []


def _default_count_problems(requests: int, concurrency: int) -> list[str]:
    problems = _range_problems("default_requests", requests, MAX_REQUESTS) + _range_problems(
        "default_concurrency", concurrency, MAX_CONCURRENCY
    )
    if not problems and concurrency > requests:
        problems.append(
            f"default_concurrency: {concurrency} is more than default_requests {requests}"
        )
    return problems


def _range_problems(prop: str, value: object, highest: int) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= highest:
        return [f"{prop}: {value!r} is not allowed; expected a whole number from 1 to {highest}"]
    return []
