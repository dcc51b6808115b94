"""The function behind the ``TemporaryEgress`` custom resources; this folder is its code.

Lambda runs ``index.on_event`` and ``index.is_complete`` (the package ``index`` here) behind
``aws_cdk.custom_resources.Provider``. Neither ever sleeps: whatever takes time is polled.

``Custom::TemporaryEgress`` opens an internet path for a VPC whose subnets are all isolated:
an internet gateway, a public subnet with its own route table, an Elastic IP and a NAT
gateway, then ``0.0.0.0/0 -> NAT`` in the isolated route tables once the NAT is available.
``Custom::TemporaryEgressTeardown`` closes that path again. Every part carries the owner,
request and VPC tags; nothing without the owner's tag is ever changed, and a teardown checks
every part it would touch before its first mutating call.

What each event does (request type x phase):

    ==========  ===========  ================================  =====================================
    resource    request      on_event                          is_complete, polled until True
    ==========  ===========  ================================  =====================================
    Egress      Create       checks (read-only) that it can    opens: removes the owner's other
                             open; physical id                 parts, then finds or creates each
                             egress-opening:<request>          part of this request; at the end a
                                                               new physical id egress:<ids>, and
                                                               the ids as Data
    Egress      Update,      keeps the physical id;            True, with the ids as Data
                nothing      the ids as Data
                changed
    Egress      Update       keeps the physical id             opens as for Create, the replaced
                (re-open)                                      egress among the parts removed
                                                               first; a new physical id
    Egress      Delete       keeps the physical id             closes the ids that egress:<ids>
                                                               names, or for egress-opening:<r>
                                                               the parts tagged with request r
    Teardown    Create,      physical id teardown:<nat>        closes the ids it is given and
                Update       (kept on Update)                  every part tagged with the owner
                                                               in the VPC
    Teardown    Delete       keeps the physical id             True: the egress's Delete removes
                                                               what is left
    ==========  ===========  ================================  =====================================

When something fails, or a function dies halfway (a crash, a timeout):

- ``on_event`` makes no change, so a Create refused there leaves nothing behind. That matters:
  CloudFormation answers a Create that failed before it had a physical id with a Delete
  that the provider framework drops, so nothing would clean up after it.
- Once ``on_event`` returned a physical id, CloudFormation follows a failure with a Delete of
  that id (after a Create) or with the rollback's Update (after a re-open). Either one
  removes everything the failed request created, found by its tags, so ``is_complete``
  never cleans up before it raises.
- Every step may run again: a part is looked for by its request's tags before it is created,
  and a removal takes "not found" for done. So whatever a poll that died left behind, the
  same poll run again, the Delete or the rollback finds it.
"""
