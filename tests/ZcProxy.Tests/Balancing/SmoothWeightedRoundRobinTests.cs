using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing.Policies;

namespace ZcProxy.Tests.Balancing;

public class SmoothWeightedRoundRobinTests
{
    [Fact]
    public void Pick_Weights511_GivesNginxSmoothSequence()
    {
        var a = new DestinationState("a");
        var b = new DestinationState("b");
        var c = new DestinationState("c");
        var weights = new Dictionary<DestinationState, double> { [a] = 5, [b] = 1, [c] = 1 };
        var wrr = new SmoothWeightedRoundRobin();

        var picks = Enumerable.Range(0, 14).Select(_ => wrr.Pick([a, b, c], d => weights[d])!.DestinationId);

        // nginx's documented sequence for 5:1:1, twice: no bursts of the heavy destination beyond what its weight needs.
        Assert.Equal("aabacaaaabacaa", string.Concat(picks));
    }

    [Fact]
    public void Pick_FractionalWeights_ShareExactlyOverACycle()
    {
        var a = new DestinationState("a");
        var b = new DestinationState("b");
        var wrr = new SmoothWeightedRoundRobin();
        int aCount = Enumerable.Range(0, 1000).Count(_ => wrr.Pick([a, b], d => d == a ? 0.5 : 1.5) == a);
        Assert.InRange(aCount, 249, 251);
    }
}
