"""A platform team's app: a shared closed VPC, cluster and load balancer; an imported VPC."""
