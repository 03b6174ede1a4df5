using ZcProxy.Core.Output;

namespace ZcProxy.Tests.Output;

/// <summary>
/// The residency rule's memory of ranges found wholly in the page cache: a hit within the trust of the last look-up of the
/// same open file and range skips the cachestat (docs/direct-io.md); anything else asks again.
/// </summary>
public sealed class RecentlyResidentTests
{
    [Fact]
    public void WhollyResidentRange_IsTrustedForItsFileAndRange_WithinTheWindowOnly()
    {
        var recent = new RecentlyResident();
        object file = new(), other = new();
        Assert.Null(recent.Since(file, 4096, 16 << 20, 1_000));
        recent.Note(file, 4096, 16 << 20, 1_000);
        Assert.Equal(1_000, recent.Since(file, 4096, 16 << 20, 1_000));
        Assert.Equal(1_000, recent.Since(file, 4096, 16 << 20, 1_000 + RecentlyResident.TrustForMs)); // the look-up's time, not now
        Assert.Null(recent.Since(file, 4096, 16 << 20, 1_001 + RecentlyResident.TrustForMs));
        Assert.Null(recent.Since(file, 4096, 8 << 20, 1_000)); // another range of the file
        Assert.Null(recent.Since(file, 0, 16 << 20, 1_000));
        Assert.Null(recent.Since(other, 4096, 16 << 20, 1_000)); // another handle: a replaced entry
        Assert.Null(recent.Since(file, 4096, 16 << 20, 999)); // a clock before the look-up trusts nothing
    }

    [Fact]
    public void ManyFiles_KeepAtMostOneRangePerSlot_NeverAnswerForTheWrongFile()
    {
        var recent = new RecentlyResident();
        var files = Enumerable.Range(0, 4 * RecentlyResident.Slots).Select(_ => new object()).ToArray();
        foreach (var f in files) recent.Note(f, 0, 1 << 20, 50);
        int trusted = files.Count(f => recent.Since(f, 0, 1 << 20, 50) is not null);
        Assert.InRange(trusted, 1, RecentlyResident.Slots);
        Assert.Equal(50, recent.Since(files[^1], 0, 1 << 20, 50)); // the last noted is always there
        recent.Note(files[0], 0, 2 << 20, 60); // a new range of a file replaces its slot's entry
        Assert.Equal(60, recent.Since(files[0], 0, 2 << 20, 60));
        Assert.Null(recent.Since(files[0], 0, 1 << 20, 60));
    }
}
