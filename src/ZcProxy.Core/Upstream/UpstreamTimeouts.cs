using Yarp.ReverseProxy.Forwarder;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Upstream;

/// <summary>
/// Timeouts of one upstream exchange. Defaults come from the ZeroCopy section; a cluster's YARP
/// HttpRequest.ActivityTimeout overrides the response-head and body-idle timeouts, because that is what
/// YARP's forwarder applies to the same cluster (time without progress), so both paths time out alike.
/// </summary>
internal readonly record struct UpstreamTimeouts(TimeSpan Connect, TimeSpan ResponseHead, TimeSpan BodyIdle)
{
    public static UpstreamTimeouts For(ZeroCopyOptions options, ForwarderRequestConfig? clusterRequest, IReadOnlyDictionary<string, string>? clusterMetadata = null)
    {
        var activity = clusterRequest?.ActivityTimeout;
        // The cluster's "ConnectTimeout" metadata (see docs/pools.md) is what YARP's HttpClient uses for that cluster too.
        var connect = clusterMetadata is not null && clusterMetadata.TryGetValue(Balancing.BalancingMetadataKeys.ConnectTimeout, out var text)
            && Duration.TryParse(text, out var perCluster) && perCluster > TimeSpan.Zero ? perCluster : options.ConnectTimeout;
        return new UpstreamTimeouts(connect, activity ?? options.ResponseHeadTimeout, activity ?? options.BodyIdleTimeout);
    }
}
