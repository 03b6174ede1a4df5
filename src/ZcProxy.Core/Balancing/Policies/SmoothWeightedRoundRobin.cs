using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing.Policies;

/// <summary>
/// nginx's smooth weighted round-robin: every pick adds each candidate's weight to its running score, takes the
/// highest score and subtracts the total weight from it. Weights 5:1:1 give a,a,b,a,c,a,a rather than bursts.
/// One instance per cluster; scores are kept by destination id so that they survive health changes.
/// </summary>
internal sealed class SmoothWeightedRoundRobin
{
    private static readonly ConditionalWeakTable<ClusterState, SmoothWeightedRoundRobin> PerCluster = new();

    private readonly Dictionary<string, double> _scores = new(StringComparer.Ordinal);

    public static SmoothWeightedRoundRobin For(ClusterState cluster) => PerCluster.GetValue(cluster, static _ => new());

    public DestinationState? Pick(IReadOnlyList<DestinationState> candidates, Func<DestinationState, double> weight)
    {
        if (candidates.Count == 0) return null;
        if (candidates.Count == 1) return candidates[0];
        lock (_scores)
        {
            DestinationState? best = null;
            double bestScore = double.MinValue, total = 0;
            foreach (var d in candidates)
            {
                var w = weight(d);
                _scores.TryGetValue(d.DestinationId, out var score);
                score += w;
                _scores[d.DestinationId] = score;
                total += w;
                if (best is null || score > bestScore) { best = d; bestScore = score; }
            }
            _scores[best!.DestinationId] = bestScore - total;
            return best;
        }
    }
}
