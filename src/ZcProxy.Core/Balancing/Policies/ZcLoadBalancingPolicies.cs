namespace ZcProxy.Core.Balancing.Policies;

/// <summary>
/// Policy names a cluster's <c>LoadBalancingPolicy</c> refers to. The first three replace YARP's policies of the same
/// name with weight-aware ones; Random and FirstAlphabetical stay YARP's.
/// </summary>
internal static class ZcLoadBalancingPolicies
{
    public const string RoundRobin = "RoundRobin";
    public const string LeastRequests = "LeastRequests";
    public const string PowerOfTwoChoices = "PowerOfTwoChoices";
    public const string ConsistentHash = "ConsistentHash";
}
