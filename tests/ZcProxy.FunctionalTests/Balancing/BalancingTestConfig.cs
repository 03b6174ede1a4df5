using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Balancing;

/// <summary>
/// Config builders for the pool tests. Every functional test runs with ZeroCopy.Enabled true (ZcProxy's zero-copy
/// forwarder) and false (YARP's forwarder), and proves which one ran with <see cref="PathAssert"/>.
/// </summary>
internal static class BalancingTestConfig
{
    public static readonly HttpClient Client = new(new SocketsHttpHandler
    {
        PooledConnectionLifetime = TimeSpan.FromSeconds(5),
        MaxConnectionsPerServer = 64,
    }) { Timeout = TimeSpan.FromSeconds(30) };

    public static string Destination(string name, string url, string metadata = "")
        => $"\"{name}\": {{ \"Address\": \"{url}\"{(metadata.Length > 0 ? $", \"Metadata\": {{ {metadata} }}" : "")} }}";

    public static string Cluster(string id, string policy, string metadata, params string[] destinations)
        => $"\"{id}\": {{ \"LoadBalancingPolicy\": \"{policy}\", {(metadata.Length > 0 ? $"\"Metadata\": {{ {metadata} }}," : "")} \"Destinations\": {{ {string.Join(", ", destinations)} }} }}";

    /// <summary>A main file routing /{**rest} to cluster "c" (and /q2/... to "c2" when given).</summary>
    public static string Write(ConfigDirectory dir, bool zeroCopy, string clusters, bool secondRoute = false)
    {
        var routes = secondRoute
            ? """ "r2": { "ClusterId": "c2", "Match": { "Path": "/q2/{**rest}" } }, "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } """
            : """ "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } """;
        return dir.WriteMain($$"""{ "Routes": { {{routes}} }, "Clusters": { {{clusters}} } }""",
            $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" } """);
    }

    /// <summary>
    /// A destination port that refuses every connection by construction: nothing can listen on TCP port 0 (binding it
    /// picks a free port), so Linux answers connect(2) to 127.0.0.1:0 with ECONNREFUSED, always. A port taken from the
    /// OS and closed again is not: another test's server may bind it meanwhile and take the "refused" requests.
    /// </summary>
    public static int RefusingPort() => 0;
}
