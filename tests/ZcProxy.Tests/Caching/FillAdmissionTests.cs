using ZcProxy.Core.Caching;
using ZcProxy.Core.Output;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// Whether a cache fill stays in the page cache, by DirectIo, the length and the free room (a fake /proc and cgroup
/// tree on a fake clock, as in PageCacheRoomTests): a large residency fill stays only when the memory has room for it.
/// </summary>
public sealed class FillAdmissionTests : IDisposable
{
    private const long MiB = 1 << 20;
    private static readonly DirectIoPolicy Residency = new(DirectIoMode.Residency, 4 * MiB);
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"zc-fill-room-{Guid.NewGuid():N}");
    private readonly ManualTimeProvider _clock = new();

    public FillAdmissionTests()
    {
        Directory.CreateDirectory(Path.Combine(_root, "proc", "self"));
        Directory.CreateDirectory(Path.Combine(_root, "cgroup", "memory", "bench"));
        File.WriteAllText(Path.Combine(_root, "proc", "meminfo"), "MemTotal:       25165824 kB\nMemFree:        20971520 kB\n"); // 24 GiB, 20 free
        File.WriteAllText(Path.Combine(_root, "proc", "self", "cgroup"), "4:memory:/bench\n0::/\n");
        File.WriteAllText(Path.Combine(_root, "cgroup", "memory", "bench", "memory.limit_in_bytes"), $"{1024 * MiB}\n");
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>The cgroup's usage: its free room is 1024 MiB minus this, and the margin 128 MiB.</summary>
    private void CgroupUsage(long usedMiB) =>
        File.WriteAllText(Path.Combine(_root, "cgroup", "memory", "bench", "memory.usage_in_bytes"), $"{usedMiB * MiB}\n");

    private PageCacheRoom Room() => new(_clock, Path.Combine(_root, "proc"), Path.Combine(_root, "cgroup"));

    [Fact]
    public void Residency_LargeFill_StaysOnlyWithRoom_AndReservesItsLength()
    {
        CgroupUsage(800); // 224 MiB free: 96 MiB more leave the 128 MiB margin
        var room = Room();
        Assert.True(FillAdmission.KeepsInPageCache(Residency, 64 * MiB, room, out long reserved));
        Assert.Equal(64 * MiB, reserved);
        // The same reading (no time passed), 64 MiB taken: 224 - 64 - 64 < 128. Kept out, nothing reserved.
        Assert.False(FillAdmission.KeepsInPageCache(Residency, 64 * MiB, room, out reserved));
        Assert.Equal(0, reserved);
        Assert.True(FillAdmission.KeepsInPageCache(Residency, 32 * MiB, room, out reserved)); // 224 - 64 - 32 = 128
        room.Release(64 * MiB);
        room.Release(32 * MiB);
        CgroupUsage(1000); // the page cache is full
        Assert.False(FillAdmission.KeepsInPageCache(Residency, 4 * MiB, room, out _));
    }

    [Fact]
    public void Residency_SmallFill_StaysWithoutAskingTheRoom()
    {
        CgroupUsage(1024);
        Assert.True(FillAdmission.KeepsInPageCache(Residency, 4 * MiB - 1, Room(), out long reserved));
        Assert.Equal(0, reserved);
    }

    [Fact]
    public void Residency_UnknownLength_AsksForTheThreshold()
    {
        CgroupUsage(1024 - 128 - 4); // 132 MiB free: the threshold (4 MiB) fits, not a byte more
        var room = Room();
        Assert.True(FillAdmission.KeepsInPageCache(Residency, null, room, out long reserved));
        Assert.Equal(4 * MiB, reserved);
        Assert.False(FillAdmission.KeepsInPageCache(Residency, null, room, out _));
    }

    [Fact]
    public void UnknownLength_OutgrowingItsRoom_AsksForAsMuchAgain_UntilRefused()
    {
        CgroupUsage(1024 - 128 - 20); // 148 MiB free over the 128 MiB margin: 20 MiB in all
        var room = Room();
        Assert.True(FillAdmission.KeepsInPageCache(Residency, null, room, out long reserved));
        Assert.True(FillAdmission.KeepsGrowing(4 * MiB, ref reserved, room)); // within what it has: nothing asked
        Assert.Equal(4 * MiB, reserved);
        Assert.True(FillAdmission.KeepsGrowing(9 * MiB, ref reserved, room)); // 4 more, then 8 more: 16 taken
        Assert.Equal(16 * MiB, reserved);
        Assert.False(FillAdmission.KeepsGrowing(17 * MiB, ref reserved, room)); // 16 more do not fit in the 4 left
        Assert.Equal(16 * MiB, reserved); // what it holds, given back when the fill ends
        room.Release(reserved);
        Assert.True(room.Fits(20 * MiB));
    }

    [Fact]
    public void Residency_RoomUnreadable_KeepsLargeFillsOut()
    {
        Directory.Delete(Path.Combine(_root, "proc"), recursive: true);
        Assert.False(FillAdmission.KeepsInPageCache(Residency, 64 * MiB, Room(), out _));
    }

    [Theory]
    [InlineData("Threshold", 64L << 20, false)]
    [InlineData("Threshold", null, false)] // unknown length: large, as before
    [InlineData("Threshold", (4L << 20) - 1, true)]
    [InlineData("Off", 64L << 20, true)]
    [InlineData("Off", null, true)]
    public void ThresholdAndOff_DecideByLengthAlone_WhateverTheRoom(string mode, long? length, bool kept)
    {
        CgroupUsage(100); // plenty of room: it must not matter
        var room = Room();
        var policy = new DirectIoPolicy(Enum.Parse<DirectIoMode>(mode), 4 * MiB);
        Assert.Equal(kept, FillAdmission.KeepsInPageCache(policy, length, room, out long reserved));
        Assert.Equal(0, reserved);
        Assert.True(room.Fits(700 * MiB)); // nothing taken: 924 - 700 >= 128
    }
}
