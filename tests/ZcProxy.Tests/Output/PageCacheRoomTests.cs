using ZcProxy.Core.Output;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Output;

/// <summary>
/// The free room re-admission asks about, read from a fake /proc and cgroup tree: MemFree and the memory cgroup's limit
/// minus usage (v1 and v2), the margin, and the cached reading on a fake clock.
/// </summary>
public sealed class PageCacheRoomTests : IDisposable
{
    private const long MiB = 1 << 20;
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"zc-room-{Guid.NewGuid():N}");
    private readonly ManualTimeProvider _clock = new();

    private string Proc => Path.Combine(_root, "proc");
    private string Cgroup => Path.Combine(_root, "cgroup");

    public PageCacheRoomTests() => Directory.CreateDirectory(Path.Combine(Proc, "self"));

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Meminfo(long totalMiB, long freeMiB) => File.WriteAllText(Path.Combine(Proc, "meminfo"),
        $"MemTotal:       {totalMiB * 1024} kB\nMemFree:        {freeMiB * 1024} kB\nMemAvailable:   {totalMiB * 1024} kB\nCached:         1 kB\n");

    private void Write(string relative, string text)
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    private PageCacheRoom Room() => new(_clock, Proc, Cgroup);

    [Fact]
    public void NoCgroupLimit_MemFreeDecides_WithAnEighthOfMemTotalLeft()
    {
        Meminfo(totalMiB: 8192, freeMiB: 2048);
        Write("proc/self/cgroup", "4:memory:/svc\n0::/\n");
        Write("cgroup/memory/svc/memory.limit_in_bytes", "9223372036854771712\n");
        Write("cgroup/memory/svc/memory.usage_in_bytes", $"{6000 * MiB}\n");
        var room = Room();
        Assert.True(room.Fits(1024 * MiB)); // 2048 - 1024 >= 8192 / 8
        Assert.False(room.Fits(1025 * MiB));
    }

    [Fact]
    public void CgroupV1_LimitMinusUsage_EvenWithTheSystemFree()
    {
        Meminfo(totalMiB: 24576, freeMiB: 20000);
        Write("proc/self/cgroup", "9:systemd:/\n4:cpu,memory:/bench/one\n0::/\n");
        Write("cgroup/memory/bench/one/memory.limit_in_bytes", $"{1024 * MiB}\n");
        Write("cgroup/memory/bench/one/memory.usage_in_bytes", $"{800 * MiB}\n");
        var room = Room();
        Assert.True(room.Fits(96 * MiB)); // 224 - 96 >= 128 (1024 / 8)
        Assert.False(room.Fits(97 * MiB));
    }

    [Fact]
    public void CgroupV2_MemoryMaxMinusCurrent_AndMaxMeansNoLimit()
    {
        Meminfo(totalMiB: 4096, freeMiB: 3000);
        Write("proc/self/cgroup", "0::/system.slice/zcproxy.service\n");
        Write("cgroup/system.slice/zcproxy.service/memory.max", $"{512 * MiB}\n");
        Write("cgroup/system.slice/zcproxy.service/memory.current", $"{400 * MiB}\n");
        Assert.False(Room().Fits(64 * MiB)); // 112 - 64 < 64 (the least margin)
        Assert.True(Room().Fits(48 * MiB));
        Write("cgroup/system.slice/zcproxy.service/memory.max", "max\n");
        Assert.True(Room().Fits(2000 * MiB)); // 3000 - 2000 >= 512: the system decides
    }

    [Fact]
    public void Reading_CachedUntilRefreshEvery_OnTheClock()
    {
        Meminfo(totalMiB: 8192, freeMiB: 4096);
        Write("proc/self/cgroup", "0::/\n");
        var room = Room();
        Assert.True(room.Fits(1024 * MiB));
        Meminfo(totalMiB: 8192, freeMiB: 100); // the memory fills up
        _clock.Advance(PageCacheRoom.RefreshEvery - TimeSpan.FromTicks(1));
        Assert.True(room.Fits(1024 * MiB)); // not read again yet
        _clock.Advance(TimeSpan.FromTicks(1));
        Assert.False(room.Fits(1024 * MiB));
    }

    [Theory]
    [InlineData("MemTotal: 8388608 kB\n")] // no MemFree
    [InlineData("")]
    public void Unreadable_NeverFits(string meminfo)
    {
        File.WriteAllText(Path.Combine(Proc, "meminfo"), meminfo);
        Assert.False(Room().Fits(1));
    }

    [Fact]
    public void Missing_NeverFits_NorThrows()
    {
        Directory.Delete(Proc, recursive: true);
        Assert.False(Room().Fits(1));
    }

    [Fact]
    public void Reserved_CountsAgainstTheRoom_UntilReleased_ThenReadAgain()
    {
        Meminfo(totalMiB: 8192, freeMiB: 4096);
        Write("proc/self/cgroup", "0::/\n");
        var room = Room();
        Assert.True(room.TryReserve(2000 * MiB)); // 4096 - 2000 >= 1024 (8192 / 8)
        Assert.False(room.TryReserve(2000 * MiB)); // the same reading, 2000 taken: 4096 - 4000 < 1024
        Assert.False(room.Fits(2000 * MiB)); // re-admission sees what fills took
        Assert.True(room.TryReserve(1000 * MiB)); // 4096 - 3000 >= 1024
        Meminfo(totalMiB: 8192, freeMiB: 2096); // the first fill's 2000 MiB are in the page cache now
        room.Release(2000 * MiB);
        Assert.False(room.Fits(73 * MiB)); // read again without waiting for the clock: 2096 - 1000 - 73 < 1024
        Assert.True(room.Fits(72 * MiB));
        room.Release(1000 * MiB);
        Assert.True(room.Fits(1072 * MiB));
        Assert.False(room.Fits(1073 * MiB));
    }

    [Fact]
    public void Unreadable_ReservesNothing()
    {
        Directory.Delete(Proc, recursive: true);
        Assert.False(Room().TryReserve(1));
    }
}
