"""The id of the region's S3 managed prefix list, looked up when the stack deploys.

Security groups name the S3 gateway endpoint's destinations by that prefix list
(https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html: "You can reference
the ID of the prefix list for Amazon S3 in security group rules"). Its id differs per
region, aws-cdk-lib's region facts do not list it, ``AWS::EC2::VPCEndpoint`` returns no
prefix list id (aws-cloudformation/cloudformation-coverage-roadmap#453), and
``ec2.PrefixList.from_lookup`` needs credentials at synth. A deploy-time
``DescribeManagedPrefixLists`` call by name (``com.amazonaws.<region>.s3``) needs neither,
and works in an environment-agnostic stack.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from traced_fargate._checkov import CUSTOM_RESOURCE_FUNCTION_SKIPS, functions_under, skip_all

PREFIX_LIST_ID = "PrefixLists.0.PrefixListId"
"""Where the id is in the DescribeManagedPrefixLists response."""


def s3_prefix_list_lookup(
    scope: Construct, construct_id: str, *, log_group: logs.ILogGroup
) -> cr.AwsCustomResource:
    """A custom resource whose ``get_response_field(PREFIX_LIST_ID)`` is the id. Its
    function runs outside any VPC (its answer goes to CloudFormation's S3 URL)."""
    stack = Stack.of(scope)
    call = cr.AwsSdkCall(
        service="EC2",
        action="describeManagedPrefixLists",
        parameters={
            "Filters": [
                {"Name": "prefix-list-name", "Values": [f"com.amazonaws.{stack.region}.s3"]}
            ]
        },
        physical_resource_id=cr.PhysicalResourceId.from_response(PREFIX_LIST_ID),
        output_paths=[PREFIX_LIST_ID],
    )
    lookup = cr.AwsCustomResource(
        scope,
        construct_id,
        resource_type="Custom::S3PrefixList",
        on_create=call,
        on_update=call,
        policy=cr.AwsCustomResourcePolicy.from_statements(
            [
                iam.PolicyStatement(
                    actions=["ec2:DescribeManagedPrefixLists"],
                    # The action supports no resource-level permissions.
                    resources=["*"],
                )
            ]
        ),
        install_latest_aws_sdk=False,
        log_group=log_group,
    )
    Validations.of(lookup).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ec2:DescribeManagedPrefixLists, a read-only call, supports no "
            "resource-level permissions; it is the only action of this policy.",
        )
    )
    # The stack's one function behind every AwsCustomResource, reached through its role.
    function_role = lookup.grant_principal
    if isinstance(function_role, Construct):
        skip_all(functions_under(function_role.node.scope), CUSTOM_RESOURCE_FUNCTION_SKIPS)
        Validations.of(function_role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                "service-role/AWSLambdaBasicExecutionRole]",
                reason="aws-cdk-lib's AwsCustomResource function uses the AWS basic execution "
                "policy, which allows writing its logs only.",
            )
        )
    return lookup
