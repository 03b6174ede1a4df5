using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Configuration;

namespace ZcProxy.Core.Local;

/// <summary>
/// A route without a cluster that ZcProxy answers itself: a direct answer (<c>Return</c>) or a static directory (<c>Static</c>). Compiled once per route
/// config (a reload brings new instances); `check` reports what <see cref="Compile"/> rejects, so a running route
/// always compiles.
/// </summary>
internal sealed class LocalRoute
{
    private static readonly ConditionalWeakTable<RouteConfig, LocalRoute?> Compiled = [];

    private LocalRoute(DirectAnswer? answer, StaticRoute? files)
    {
        Answer = answer;
        Files = files;
    }

    public DirectAnswer? Answer { get; }
    public StaticRoute? Files { get; }

    /// <summary>The Metadata keys that make a route local, for error messages.</summary>
    public const string KeysText = "Return' or 'Static";

    /// <summary>True when the route's Metadata makes it local (whatever else it says).</summary>
    public static bool IsLocal(RouteConfig route)
        => route.Metadata is { } m && (m.ContainsKey(DirectAnswer.ReturnKey) || m.ContainsKey(StaticRoute.RootKey));

    /// <summary>The compiled route, or null when it is not local.</summary>
    public static LocalRoute? For(RouteConfig route) => Compiled.GetValue(route, r => Compile(r, []));

    /// <summary>Compiles a local route; null (and one error per bad Metadata key) when it is not one or is invalid.</summary>
    public static LocalRoute? Compile(RouteConfig route, List<(string Key, string Message)> errors)
    {
        if (!IsLocal(route)) return null;
        var metadata = route.Metadata!;
        if (metadata.ContainsKey(StaticRoute.RootKey))
            return StaticRoute.Parse(metadata, errors) is { } files ? new LocalRoute(null, files) : null;
        return DirectAnswer.Parse(metadata, errors) is { } answer ? new LocalRoute(answer, null) : null;
    }
}
