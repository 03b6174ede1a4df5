using ZcProxy.Core.Output;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Output;

/// <summary>Re-admission's memory of cold hits: they add up only within the window, and per file.</summary>
public sealed class ColdHitsTests
{
    [Fact]
    public void ColdHits_AddUpWithinTheWindow_PerFile_AndStartOverAfterItOrAfterForget()
    {
        var clock = new ManualTimeProvider();
        var hits = new ColdHits(clock);
        Assert.Equal(1, hits.Note("/a"));
        clock.Advance(ColdHits.Window);
        Assert.Equal(2, hits.Note("/a")); // exactly the window apart: still in a row
        Assert.Equal(1, hits.Note("/b"));
        clock.Advance(ColdHits.Window + TimeSpan.FromSeconds(1));
        Assert.Equal(1, hits.Note("/a")); // too long since the last one
        Assert.Equal(2, hits.Note("/a"));
        hits.Forget("/a");
        Assert.Equal(1, hits.Note("/a"));
    }

    [Fact]
    public void ColdHits_Bounded_CountsStartOverWhenFull()
    {
        var hits = new ColdHits(new ManualTimeProvider());
        Assert.Equal(1, hits.Note("/kept"));
        for (int i = 0; i < ColdHits.MaxFiles - 1; i++) hits.Note($"/f{i}");
        Assert.Equal(2, hits.Note("/kept")); // full, but a known file is counted on
        Assert.Equal(1, hits.Note("/new")); // a new one when full: all counts start over
        Assert.Equal(1, hits.Note("/kept"));
    }
}
