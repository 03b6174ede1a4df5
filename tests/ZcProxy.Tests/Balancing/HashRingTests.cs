using ZcProxy.Core.Balancing.Policies;

namespace ZcProxy.Tests.Balancing;

public class HashRingTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly string[] Five = ["d1", "d2", "d3", "d4", "d5"];
    private static readonly string[] Keys = Enumerable.Range(0, 10_000).Select(i => $"user-{i}").ToArray();

    private static HashRing Ring(IEnumerable<string> ids, Func<string, int>? weight = null)
        => HashRing.Build(ids.Select(id => (id, weight?.Invoke(id) ?? 1)).ToList());

    [Fact]
    public void SameKey_AlwaysSameDestination_AndIndependentOfListingOrder()
    {
        var ring = Ring(Five);
        var reordered = Ring(Five.Reverse());
        foreach (var key in Keys.Take(1000))
        {
            var owner = ring.Lookup(StableHash.Of(key), _ => true);
            Assert.Equal(owner, ring.Lookup(StableHash.Of(key), _ => true));
            Assert.Equal(owner, reordered.Lookup(StableHash.Of(key), _ => true));
        }
    }

    [Fact]
    public void RemovingOneOfFive_RemapsAboutAFifth_AndOnlyItsKeys()
    {
        var ring = Ring(Five);
        var before = Keys.ToDictionary(k => k, k => ring.Lookup(StableHash.Of(k), _ => true)!);

        // Unavailable (health, breaker): skipped on the same ring.
        var skipped = Keys.ToDictionary(k => k, k => ring.Lookup(StableHash.Of(k), id => id != "d3")!);
        // Removed from the configuration: a ring built without it.
        var rebuilt = Ring(Five.Where(d => d != "d3"));
        var removed = Keys.ToDictionary(k => k, k => rebuilt.Lookup(StableHash.Of(k), _ => true)!);

        foreach (var after in new[] { skipped, removed })
        {
            double moved = Keys.Count(k => before[k] != after[k]) / (double)Keys.Length;
            output.WriteLine($"moved {moved:F4} of {Keys.Length} keys");
            Assert.InRange(moved, 0.15, 0.25);
            Assert.All(Keys.Where(k => before[k] != after[k]), k => Assert.Equal("d3", before[k]));
        }
        Assert.Equal(skipped, removed);
    }

    [Fact]
    public void Weights_ShareKeysProportionally()
    {
        var ring = Ring(["heavy", "light"], id => id == "heavy" ? 3 : 1);
        double heavy = Keys.Count(k => ring.Lookup(StableHash.Of(k), _ => true) == "heavy") / (double)Keys.Length;
        output.WriteLine($"weight 3 of 4 owns {heavy:F4} of the keys");
        Assert.InRange(heavy, 0.70, 0.80);
    }

    [Fact]
    public void NothingAvailable_ReturnsNull()
        => Assert.Null(Ring(Five).Lookup(StableHash.Of("k"), _ => false));
}
