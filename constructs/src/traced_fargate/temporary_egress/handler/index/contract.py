"""What the construct and the handler agree on; both import it, neither copies it.

Nothing here imports anything: the construct reads these names when it synthesizes, where
the handler's own dependencies (boto3) need not be installed.
"""

from __future__ import annotations

EGRESS_RESOURCE_TYPE = "Custom::TemporaryEgress"
"""Opens the egress; its Delete removes what it opened."""
TEARDOWN_RESOURCE_TYPE = "Custom::TemporaryEgressTeardown"
"""Closes the egress once the resources that needed it exist."""

# --- resource properties -------------------------------------------------------------------
VPC_ID = "VpcId"
OWNER_TAG = "OwnerTag"
ROUTE_TABLE_IDS = "RouteTableIds"
PUBLIC_SUBNET_CIDR = "PublicSubnetCidr"
AVAILABILITY_ZONE = "AvailabilityZone"
GENERATION = "Generation"
"""A new value re-opens the egress (the teardown carries it too, so it closes again)."""

# --- tags on every part the handler creates -------------------------------------------------
OWNER_TAG_KEY = "traced-fargate:egress-owner"
"""Value: the construct's path. The handler's IAM policy allows changes only to resources
that carry it, and the handler removes nothing without it."""
REQUEST_TAG_KEY = "traced-fargate:egress-request"
"""Value: the CloudFormation request that created the part; a later poll of the same request
finds it again instead of creating a second one."""
VPC_TAG_KEY = "traced-fargate:egress-vpc"
"""Value: the VPC the part belongs to, also for the parts EC2 places in no VPC (an Elastic
IP, an internet gateway not attached yet)."""

# --- the egress's data: its Fn::GetAtt attribute names --------------------------------------
NAT_GATEWAY_ID = "NatGatewayId"
ALLOCATION_ID = "AllocationId"
INTERNET_GATEWAY_ID = "InternetGatewayId"
PUBLIC_SUBNET_ID = "PublicSubnetId"
PUBLIC_ROUTE_TABLE_ID = "PublicRouteTableId"
DATA_KEYS = (
    NAT_GATEWAY_ID,
    ALLOCATION_ID,
    INTERNET_GATEWAY_ID,
    PUBLIC_SUBNET_ID,
    PUBLIC_ROUTE_TABLE_ID,
)
"""The ids the egress reports, in the order of its physical id; the teardown takes them as
properties of the same names."""

# --- what the handler creates ---------------------------------------------------------------
PART_RESOURCE_TYPES = ("internet-gateway", "subnet", "route-table", "elastic-ip", "natgateway")
"""EC2 resource types of the parts: the ``ResourceType`` of their tag specifications and
the resource type in their ARNs."""
CREATE_ACTIONS = (
    "ec2:AllocateAddress",
    "ec2:CreateInternetGateway",
    "ec2:CreateNatGateway",
    "ec2:CreateRouteTable",
    "ec2:CreateSubnet",
)
"""The calls that create (and tag) a part."""
