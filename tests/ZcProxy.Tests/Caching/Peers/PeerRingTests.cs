using ZcProxy.Core.Caching.Peers;

namespace ZcProxy.Tests.Caching.Peers;

/// <summary>Rendezvous hashing: an even spread, and at most 1/N of the keys move when a node leaves or joins.</summary>
public class PeerRingTests
{
    private static readonly string[] Three = ["http://10.0.1.1:8080", "http://10.0.1.2:8080", "http://10.0.1.3:8080"];
    private static readonly string[] Keys = Enumerable.Range(0, 30_000).Select(i => $"http://cdn.example/objects/{i}.bin").ToArray();

    private static string Owner(string key, IReadOnlyList<string> nodes) => PeerRing.Owner(key, nodes, _ => true)!;

    [Fact]
    public void Owner_SpreadsKeysEvenly_AcrossNodes()
    {
        var counts = Keys.GroupBy(k => Owner(k, Three)).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(3, counts.Count);
        foreach (var (node, count) in counts)
            Assert.InRange(count, Keys.Length / 3 * 0.95, Keys.Length / 3 * 1.05); // within 5 % of a third
    }

    [Fact]
    public void NodeLeaves_OnlyItsOwnKeysMove()
    {
        var before = Keys.ToDictionary(k => k, k => Owner(k, Three));
        var two = Three.Where(n => n != Three[1]).ToArray();
        int moved = 0;
        foreach (var key in Keys)
        {
            var after = Owner(key, two);
            if (after == before[key]) continue;
            moved++;
            Assert.Equal(Three[1], before[key]); // only the leaving node's keys get a new owner
        }
        Assert.Equal(before.Values.Count(o => o == Three[1]), moved);
        Assert.True(moved <= Keys.Length / 3 * 1.05, $"{moved} of {Keys.Length} keys moved");
    }

    [Fact]
    public void NodeJoins_AboutOneInNPlusOneKeysMove_AllToTheNewNode()
    {
        var before = Keys.ToDictionary(k => k, k => Owner(k, Three));
        var four = Three.Append("http://10.0.1.4:8080").ToArray();
        int moved = 0;
        foreach (var key in Keys)
        {
            var after = Owner(key, four);
            if (after == before[key]) continue;
            moved++;
            Assert.Equal(four[3], after);
        }
        Assert.InRange(moved, Keys.Length / 4 * 0.95, Keys.Length / 4 * 1.05);
    }

    [Fact]
    public void Owner_DoesNotDependOnListOrder_AndSkipsUnusableNodes()
    {
        var reversed = Three.Reverse().ToArray();
        foreach (var key in Keys.Take(1000)) Assert.Equal(Owner(key, Three), Owner(key, reversed));
        var key0 = Keys[0];
        var owner = Owner(key0, Three);
        var next = PeerRing.Owner(key0, Three, n => n != owner);
        Assert.NotNull(next);
        Assert.NotEqual(owner, next);
        Assert.Equal(next, Owner(key0, Three.Where(n => n != owner).ToArray()));
        Assert.Null(PeerRing.Owner(key0, Three, _ => false));
    }
}
