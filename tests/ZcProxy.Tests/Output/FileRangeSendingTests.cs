using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Output;
using ZcProxy.Native;

namespace ZcProxy.Tests.Output;

/// <summary>The DirectIo rule (<see cref="FileRangeSending.Choose"/>) and the residency probe it relies on (cachestat on a real file).</summary>
public sealed class FileRangeSendingTests
{
    private const long Threshold = 4L << 20;

    private static (BodyMechanism, FileSendReason) Choose(DirectIoMode mode, long length, long objectLength, double? resident, Action? asked = null,
        int coldHits = 1, bool fits = true)
        => FileRangeSending.Choose(new DirectIoPolicy(mode, Threshold), length, objectLength, new Questions(() =>
        {
            asked?.Invoke();
            return resident;
        }, () => new Readmission(coldHits, _ => fits), _ => fits));

    private sealed class Questions(Func<double?> residentShare, Func<Readmission> readmission, Func<long, bool>? roomFor = null) : IResidencyQuestions
    {
        public double? ResidentShare() => residentShare();

        public Readmission Readmission() => readmission();

        public bool HasRoomFor(long bytes) => (roomFor ?? throw new InvalidOperationException("room asked for"))(bytes);
    }

    [Theory]
    [InlineData(1, true, "DirectIo", "Cold")] // hit cold once: O_DIRECT, whatever the room
    [InlineData(2, true, "Sendfile", "Readmitted")] // hit cold again lately, and the memory has room: brought back
    [InlineData(5, false, "DirectIo", "Cold")] // no room: it would push other pages out
    public void Residency_ColdRange_Readmitted_OnlyWhenHitAgainAndTheMemoryHasRoom(int coldHits, bool fits, string mechanism, string reason)
        => Assert.Equal((Enum.Parse<BodyMechanism>(mechanism), Enum.Parse<FileSendReason>(reason)),
            Choose(DirectIoMode.Residency, 64L << 20, 64L << 20, 0.0, coldHits: coldHits, fits: fits));

    [Theory]
    [InlineData(0.9, true, "Sendfile", "Readmitted")] // part of it in memory, room for the rest: at the first hit
    [InlineData(0.125, true, "Sendfile", "Readmitted")]
    [InlineData(0.999, false, "DirectIo", "Cold")] // no room even for the missing pages: O_DIRECT, nothing pushed out
    [InlineData(0.12, true, "DirectIo", "Cold")] // a few pages (the head's readahead): the cold-hit rule (hit once: O_DIRECT)
    public void Residency_PartlyResidentRange_SentBySendfileAtOnce_WhenTheMissingPagesFitInFreeMemory(double share, bool fits, string mechanism,
        string reason)
        => Assert.Equal((Enum.Parse<BodyMechanism>(mechanism), Enum.Parse<FileSendReason>(reason)),
            Choose(DirectIoMode.Residency, 64L << 20, 64L << 20, share, coldHits: 1, fits: fits));

    [Fact]
    public void PartlyResidentRange_AsksRoomForTheMissingBytesOnly_AndIsNotCountedAsAColdHit()
    {
        long roomAskedFor = 0;
        int coldHitsCounted = 0;
        var policy = new DirectIoPolicy(DirectIoMode.Residency, Threshold);
        var questions = new Questions(() => 0.75, () => { coldHitsCounted++; return new Readmission(1, _ => true); },
            bytes => { roomAskedFor = bytes; return true; });
        Assert.Equal((BodyMechanism.Sendfile, FileSendReason.Readmitted), FileRangeSending.Choose(policy, 64L << 20, 64L << 20, questions));
        Assert.Equal(16L << 20, roomAskedFor);
        Assert.Equal(0, coldHitsCounted);
    }

    [Fact]
    public void Readmission_AsksForRoomForTheWholeRange_AndIsNotAskedOfResidentOrSmallRanges()
    {
        long askedFor = 0;
        int asked = 0;
        var policy = new DirectIoPolicy(DirectIoMode.Residency, Threshold);
        Readmission Counting() { asked++; return new Readmission(2, bytes => { askedFor = bytes; return true; }); }
        FileRangeSending.Choose(policy, 64L << 20, 1L << 30, new Questions(() => 0.0, Counting));
        Assert.Equal(64L << 20, askedFor);
        FileRangeSending.Choose(policy, 64L << 20, 1L << 30, new Questions(() => 1.0, Counting));
        FileRangeSending.Choose(policy, Threshold - 1, 1L << 30, new Questions(() => 0.0, Counting));
        FileRangeSending.Choose(policy, 64L << 20, 1L << 30, new Questions(() => null, Counting));
        Assert.Equal(1, asked); // a cold hit is counted once, and only a cold hit
    }

    [Theory]
    [InlineData(Threshold, 1.0, "Sendfile", "Resident")]
    [InlineData(Threshold, 0.999, "Sendfile", "Readmitted")] // a page missing, memory free: sendfile reads just that back
    [InlineData(256L << 20, 0.0, "DirectIo", "Cold")]
    [InlineData(256L << 20, null, "DirectIo", "ResidencyUnknown")] // no cachestat: the threshold rule
    public void Residency_LargeRange_FollowsThePageCache(long length, double? resident, string mechanism, string reason)
        => Assert.Equal((Enum.Parse<BodyMechanism>(mechanism), Enum.Parse<FileSendReason>(reason)), Choose(DirectIoMode.Residency, length, length, resident));

    [Fact]
    public void Residency_SmallRange_Sendfile_WithoutAskingTheKernel()
    {
        bool asked = false;
        // A small range of a huge object: its pages are worth caching, and no probe is spent on it.
        Assert.Equal((BodyMechanism.Sendfile, FileSendReason.Small), Choose(DirectIoMode.Residency, Threshold - 1, 1L << 32, 0.0, () => asked = true));
        Assert.False(asked);
    }

    [Theory]
    [InlineData("Threshold", Threshold, "DirectIo", "Threshold")]
    [InlineData("Threshold", Threshold - 1, "Sendfile", "Small")]
    [InlineData("Off", 1L << 32, "Sendfile", "Off")]
    public void ThresholdAndOff_NeverAskTheKernel(string mode, long objectLength, string mechanism, string reason)
    {
        bool asked = false;
        // Threshold compares the whole object (today's rule): a small Range of a big object is still read with O_DIRECT.
        Assert.Equal((Enum.Parse<BodyMechanism>(mechanism), Enum.Parse<FileSendReason>(reason)),
            Choose(Enum.Parse<DirectIoMode>(mode), 1000, objectLength, 1.0, () => asked = true));
        Assert.False(asked);
    }

    [Fact]
    public void CachedPages_SeesAFileGoColdAfterDontNeed_AndHotAfterARead()
    {
        var path = Path.Combine(Path.GetTempPath(), $"zc-residency-{Guid.NewGuid():N}");
        try
        {
            var data = new byte[8 << 20];
            new Random(1).NextBytes(data);
            using (var w = new FileStream(path, FileMode.CreateNew, FileAccess.Write)) { w.Write(data); w.Flush(flushToDisk: true); }
            using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            long pages = Syscalls.PagesSpanned(0, data.Length);
            Assert.Equal(2048, pages);

            Syscalls.Fadvise(file, 0, 0, LinuxConstants.POSIX_FADV_DONTNEED);
            var cold = Syscalls.CachedPages(file, 0, data.Length);
            Assert.True(cold.Ok, $"cachestat: errno {cold.Errno}");
            Assert.Equal(0, cold.Bytes);

            RandomAccess.Read(file, new byte[1 << 20], 3L << 20); // pages 768..1023, and whatever readahead adds
            Assert.InRange(Syscalls.CachedPages(file, 3L << 20, 1 << 20).Bytes, 256, 256);
            Assert.InRange(Syscalls.CachedPages(file, 0, data.Length).Bytes, 256, pages - 1);
            Assert.Equal(0, Syscalls.CachedPages(file, 0, 1L << 20).Bytes); // the range asked about, not the file

            RandomAccess.Read(file, data, 0);
            Assert.Equal(pages, Syscalls.CachedPages(file, 0, data.Length).Bytes);
            // An unaligned range counts every page it touches.
            Assert.Equal(2, Syscalls.PagesSpanned(4095, 2));
            Assert.Equal(2, Syscalls.CachedPages(file, 4095, 2).Bytes);
        }
        finally { File.Delete(path); }
    }
}
