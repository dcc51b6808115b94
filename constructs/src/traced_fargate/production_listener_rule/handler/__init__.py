"""The function behind ``Custom::ProductionListenerRule``; this folder is its code.

Lambda runs ``index.on_event`` (the package ``index`` here) behind
``aws_cdk.custom_resources.Provider``. Every request finishes in one call.

The rule is an ALB listener rule that ECS blue/green deployments shift traffic on: ECS
rewrites its forward action (the weights of the two target groups) on every deployment.
CloudFormation must never write that action back, which it would do with an
``AWS::ElasticLoadBalancingV2::ListenerRule`` whenever the rule's properties change
(aws-cdk#36649): traffic would go back to the target group the template names, whose tasks
ECS may have stopped. Here CloudFormation owns the listener, priority and conditions; the
action is written once, at create, and carried over from the live rule after that.

Updates compare with the live rule, never with the old properties, so that a rollback
(the old properties sent back as new) restores what is live, whatever of the failed update
was applied.

    =======  ===========================================================================
    request  what happens
    =======  ===========================================================================
    Create   CreateRule: the conditions, forwarding to the first target group (weight
             100) and the second (weight 0); physical id: the rule's ARN. Another rule
             at that priority makes it fail: it is never taken over
    Update   DescribeRules. Same listener: ModifyRule with the new conditions, the live
             action left alone; SetRulePriorities if the priority differs from the live
             one. A replaced idle group (weight 0): the action written once more, the
             live weights on the new group; a replaced serving group is refused (its
             stand-in has no tasks). Another listener: the rule already there at that
             priority over both groups (a move being rolled back), or CreateRule with
             the live action; a new physical id, so CloudFormation deletes the other
    Delete   DeleteRule; a rule already gone is fine
    =======  ===========================================================================
"""
