using System.Globalization;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;

namespace ZcProxy.Admin;

/// <summary>
/// The runtime API (HAProxy's <c>set server ... state drain|maint|ready</c> and <c>set weight</c>), without a reload:
/// <c>POST /clusters/{cluster}/destinations/{destination}/drain | /disable | /enable</c>, <c>PUT .../weight</c> with the
/// weight as the body (<c>DELETE .../weight</c> goes back to the configured one). Each answers the destination's new
/// state as JSON. The state lives with the destination's pool state: it survives reloads while the destination stays
/// and is dropped with it. Mutating requests pass the admin listener's guard first (see AdminEndpoints).
/// </summary>
internal static partial class DestinationAdminEndpoints
{
    private const string Prefix = "/clusters/{cluster}/destinations/{destination}";

    public static void MapDestinationAdmin(this IEndpointRouteBuilder e)
    {
        e.MapPost(Prefix + "/drain", (string cluster, string destination, HttpContext context) => SetState(context, cluster, destination, DestinationAdminState.Draining));
        e.MapPost(Prefix + "/disable", (string cluster, string destination, HttpContext context) => SetState(context, cluster, destination, DestinationAdminState.Disabled));
        e.MapPost(Prefix + "/enable", (string cluster, string destination, HttpContext context) => SetState(context, cluster, destination, DestinationAdminState.Enabled));
        e.MapPut(Prefix + "/weight", SetWeightAsync);
        e.MapDelete(Prefix + "/weight", (string cluster, string destination, HttpContext context) => Change(context, cluster, destination, "weight reset to the configured one",
            runtime => runtime.WeightOverride = null));
    }

    private static IResult SetState(HttpContext context, string cluster, string destination, DestinationAdminState state)
        => Change(context, cluster, destination, DestinationAdminStates.Label(state), runtime => runtime.SetAdminState(state));

    private static async Task<IResult> SetWeightAsync(string cluster, string destination, HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body);
        var text = (await ReadLimitedAsync(reader)).Trim().Trim('"');
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var weight) || weight is < 1 or > DestinationBalancingSettings.MaxWeight)
            return Results.Json(new { error = $"the body must be the new weight, a whole number from 1 to {DestinationBalancingSettings.MaxWeight} (drain takes a destination out)" },
                statusCode: StatusCodes.Status400BadRequest);
        return Change(context, cluster, destination, $"weight set to {weight}", runtime => runtime.WeightOverride = weight);
    }

    private static IResult Change(HttpContext context, string clusterId, string destinationId, string what, Action<DestinationRuntime> change)
    {
        var state = context.RequestServices.GetRequiredService<IProxyStateLookup>();
        var pools = context.RequestServices.GetRequiredService<DestinationRegistry>();
        if (!state.TryGetCluster(clusterId, out var cluster))
            return Results.Json(new { error = $"no cluster '{clusterId}'" }, statusCode: StatusCodes.Status404NotFound);
        if (!cluster.Destinations.TryGetValue(destinationId, out var destination))
            return Results.Json(new { error = $"cluster '{cluster.ClusterId}' has no destination '{destinationId}'" }, statusCode: StatusCodes.Status404NotFound);
        change(pools.Get(cluster.ClusterId, destination));
        Log(context, cluster, destination, what);
        return Results.Json(StatusView.Destination(cluster, destination, pools), AdminEndpoints.Json);
    }

    /// <summary>A weight is a few bytes: read at most 64, so a huge body cannot tie up the admin listener.</summary>
    private static async Task<string> ReadLimitedAsync(StreamReader reader)
    {
        var buffer = new char[64];
        int total = 0, n;
        while (total < buffer.Length && (n = await reader.ReadAsync(buffer.AsMemory(total))) > 0) total += n;
        return new string(buffer, 0, total);
    }

    private static void Log(HttpContext context, ClusterState cluster, DestinationState destination, string what)
    {
        var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("ZcProxy.Admin");
        LogChanged(logger, cluster.ClusterId, destination.DestinationId, what, context.Connection.RemoteIpAddress);
    }

    [LoggerMessage(EventId = 7101, Level = LogLevel.Information, Message = "destination {Cluster}/{Destination}: {What} (admin API, from {Remote})")]
    private static partial void LogChanged(ILogger logger, string cluster, string destination, string what, System.Net.IPAddress? remote);
}
