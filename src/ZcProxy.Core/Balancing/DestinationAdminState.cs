namespace ZcProxy.Core.Balancing;

/// <summary>
/// What an operator set through the runtime API (HAProxy's server states). Requests in flight always finish, and
/// YARP's health checks go on in every state.
/// </summary>
internal enum DestinationAdminState
{
    /// <summary>In rotation (the state after start-up or a config change that adds the destination).</summary>
    Enabled,
    /// <summary>HAProxy DRAIN: no new requests, except those bound to it by session affinity (existing sessions finish).</summary>
    Draining,
    /// <summary>HAProxy MAINT: no requests at all, session-affinity ones included (they go to another destination).</summary>
    Disabled,
}

internal static class DestinationAdminStates
{
    public static string Label(DestinationAdminState state) => state switch
    {
        DestinationAdminState.Draining => "draining",
        DestinationAdminState.Disabled => "disabled",
        _ => "enabled",
    };
}
