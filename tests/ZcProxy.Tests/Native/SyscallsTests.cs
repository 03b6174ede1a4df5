using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using ZcProxy.Native;

namespace ZcProxy.Tests.Native;

public sealed class SyscallsTests
{
    [Fact]
    public void ErrnoException_NamesTheCallAndTheErrno()
    {
        var e = new ErrnoException("splice", (int)Errno.EPIPE);
        Assert.Equal(Errno.EPIPE, e.Code);
        Assert.Equal((int)Errno.EPIPE, e.HResult);
        Assert.StartsWith("splice failed: EPIPE (", e.Message);
        Assert.Contains("errno 9999", new ErrnoException("x", 9999).Message);
    }

    [Fact]
    public void Write_ToPipeWithClosedReadEnd_IsEpipe_AndToExceptionNamesIt()
    {
        var (read, write) = Syscalls.CreatePipe();
        using (write)
        {
            read.Dispose();
            var result = Syscalls.Write(write.Fd, "x"u8);
            Assert.False(result.Ok);
            Assert.Equal((int)Errno.EPIPE, result.Errno);
            Assert.Contains("EPIPE", result.ToException("write").Message);
        }
    }

    [Fact]
    public void Read_FromEmptyNonBlockingPipe_WouldBlock_ThenWrittenBytes_ThenEndOfFile()
    {
        var (read, write) = Syscalls.CreatePipe();
        using (read)
        using (write)
        {
            var empty = Syscalls.Read(read.Fd, new byte[16]);
            Assert.True(empty.WouldBlock);
            Assert.False(empty.Ok);

            Assert.Equal(new SysResult(16, 0), Syscalls.Write(write.Fd, "head middle tail"u8));
            var buffer = new byte[64];
            var got = Syscalls.Read(read.Fd, buffer);
            Assert.Equal("head middle tail", Encoding.ASCII.GetString(buffer, 0, (int)got.Bytes));

            write.Dispose();
            Assert.Equal(new SysResult(0, 0), Syscalls.Read(read.Fd, buffer));
        }
    }

    [Fact]
    public void SetPipeSize_GrantsAtLeastTheRequest()
    {
        var (read, write) = Syscalls.CreatePipe();
        using (read)
        using (write)
        {
            int granted = Syscalls.SetPipeSize(write, 1 << 20);
            Assert.True(granted >= 1 << 20);
            Assert.Equal(granted, Syscalls.GetPipeSize(write));
        }
    }

    [Fact]
    public async Task SendMessage_GathersBuffers_WithMsgMore_AndFailsWithEpipeAfterPeerReset()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await sender.ConnectAsync(listener.LocalEndPoint!);
        using var receiver = await listener.AcceptAsync();
        int fd = (int)sender.SafeHandle.DangerousGetHandle();

        IoSegment[] head = [Pinned("HTTP/1.1 200 OK\r\n"u8), Pinned("Content-Length: 4\r\n\r\n"u8)];
        Assert.Equal(38, Syscalls.SendMessage(fd, head, LinuxConstants.MSG_DONTWAIT | LinuxConstants.MSG_MORE).Bytes);
        Assert.Equal(4, Syscalls.SendMessage(fd, [Pinned("body"u8)], LinuxConstants.MSG_DONTWAIT).Bytes);
        var buffer = new byte[64];
        int total = 0;
        while (total < 42) total += await receiver.ReceiveAsync(buffer.AsMemory(total), SocketFlags.None);
        Assert.Equal("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody", Encoding.ASCII.GetString(buffer, 0, total));

        receiver.LingerState = new LingerOption(true, 0);
        receiver.Close();
        SysResult failed = default;
        for (int i = 0; i < 100 && failed.Ok; i++) // the first send after the RST may still succeed
        {
            failed = Syscalls.SendMessage(fd, [Pinned("x"u8)], LinuxConstants.MSG_DONTWAIT);
            if (failed.Ok) await Task.Delay(10);
        }
        Assert.Contains((Errno)failed.Errno, new[] { Errno.EPIPE, Errno.ECONNRESET });
    }

    [Fact]
    public void SendFile_And_Splice_MoveFileBytesThroughAPipe_AndStopAtEndOfFile()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, Encoding.ASCII.GetBytes("0123456789"));
            using var file = File.OpenHandle(path);
            var (read, write) = Syscalls.CreatePipe();
            using (read)
            using (write)
            {
                long offset = 3;
                var sent = Syscalls.SendFile(write.Fd, (int)file.DangerousGetHandle(), ref offset, 100);
                Assert.Equal((7L, 10L), (sent.Bytes, offset));
                Assert.Equal(new SysResult(0, 0), Syscalls.SendFile(write.Fd, (int)file.DangerousGetHandle(), ref offset, 100));

                var (read2, write2) = Syscalls.CreatePipe();
                using (read2)
                using (write2)
                {
                    var moved = Syscalls.Splice(read.Fd, write2.Fd, 100, LinuxConstants.SPLICE_F_NONBLOCK);
                    Assert.Equal(7, moved.Bytes);
                    var buffer = new byte[16];
                    Assert.Equal("3456789", Encoding.ASCII.GetString(buffer, 0, (int)Syscalls.Read(read2.Fd, buffer).Bytes));
                    Assert.True(Syscalls.Splice(read.Fd, write2.Fd, 100, LinuxConstants.SPLICE_F_NONBLOCK).WouldBlock);
                }
            }
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void EventFd_WakesEpollWait_AndDrainResetsIt()
    {
        using var epoll = Syscalls.EpollCreate();
        using var wake = Syscalls.EventFd();
        Assert.Equal(0, Syscalls.EpollControl(epoll, LinuxConstants.EPOLL_CTL_ADD, wake.Fd, LinuxConstants.EPOLLIN, 42));
        var ready = new (uint Events, ulong Token)[4];
        Assert.Equal(0, Syscalls.EpollWait(epoll, ready, 0));
        Syscalls.EventFdSignal(wake);
        Assert.Equal(1, Syscalls.EpollWait(epoll, ready, 1000));
        Assert.Equal(42UL, ready[0].Token);
        Syscalls.EventFdDrain(wake);
        Assert.Equal(0, Syscalls.EpollWait(epoll, ready, 0));
        Assert.Equal((int)Errno.EEXIST, Syscalls.EpollControl(epoll, LinuxConstants.EPOLL_CTL_ADD, wake.Fd, LinuxConstants.EPOLLIN, 42));
    }

    [Fact]
    public void Open_MissingFile_ThrowsEnoentWithThePath()
    {
        var e = Assert.Throws<ErrnoException>(() => Syscalls.Open("/nonexistent/zc", LinuxConstants.O_RDONLY));
        Assert.Equal(Errno.ENOENT, e.Code);
        Assert.Contains("/nonexistent/zc", e.Message);
    }

    /// <summary>A segment over a copy on the pinned object heap (as the writer's segments are); kept alive by the test's arrays.</summary>
    private IoSegment Pinned(ReadOnlySpan<byte> bytes)
    {
        var array = GC.AllocateArray<byte>(bytes.Length, pinned: true);
        bytes.CopyTo(array);
        _keepAlive.Add(array);
        return new IoSegment(Marshal.UnsafeAddrOfPinnedArrayElement(array, 0), array.Length);
    }

    private readonly List<byte[]> _keepAlive = [];

    [Fact]
    public void Tee_DuplicatesWithoutConsuming_ThenSpliceToFile_WritesAtTheOffset_AndLeavesThePositionAlone()
    {
        var (aRead, aWrite) = Syscalls.CreatePipe();
        var (bRead, bWrite) = Syscalls.CreatePipe();
        var path = Path.Combine(Path.GetTempPath(), $"zc-tee-{Guid.NewGuid():N}");
        try
        {
            using (aRead) using (aWrite) using (bRead) using (bWrite)
            using (var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                Assert.Equal(5, Syscalls.Write(aWrite.Fd, "hello"u8).Bytes);
                var teed = Syscalls.Tee(aRead.Fd, bWrite.Fd, 100, LinuxConstants.SPLICE_F_NONBLOCK);
                Assert.Equal(5, teed.Bytes);
                long offset = 4096;
                bool added = false;
                file.DangerousAddRef(ref added);
                var spliced = Syscalls.SpliceToFile(bRead.Fd, (int)file.DangerousGetHandle(), ref offset, 5, LinuxConstants.SPLICE_F_MOVE);
                file.DangerousRelease();
                Assert.Equal((5L, 4101L), (spliced.Bytes, offset));
                // The source pipe still holds its bytes; the copy went into the file at 4096.
                var back = new byte[16];
                Assert.Equal("hello", Encoding.ASCII.GetString(back, 0, (int)Syscalls.Read(aRead.Fd, back).Bytes));
                Assert.Equal(4101, RandomAccess.GetLength(file));
                Assert.Equal("hello", Encoding.ASCII.GetString(File.ReadAllBytes(path), 4096, 5));
                // An empty source: tee would block.
                Assert.True(Syscalls.Tee(aRead.Fd, bWrite.Fd, 100, LinuxConstants.SPLICE_F_NONBLOCK).WouldBlock);
            }
        }
        finally { File.Delete(path); }
    }

    /// <summary>
    /// cachestat is our own declaration (no glibc wrapper; this system's kernel headers predate it): number and structs
    /// transcribed from the kernel, arch/x86/entry/syscalls/syscall_64.tbl (451 common cachestat), include/uapi/asm-generic/
    /// unistd.h (#define __NR_cachestat 451, used by arm64), include/uapi/linux/mman.h (two and five __u64 fields).
    /// </summary>
    [Fact]
    public void CacheStat_DeclarationMatchesTheKernel()
    {
        Assert.Equal(451, Libc.CacheStatSyscall);
        Assert.Equal(16, Marshal.SizeOf<CacheStatRange>());
        Assert.Equal(40, Marshal.SizeOf<CacheStatCounts>());
        Assert.Equal(8, (int)Marshal.OffsetOf<CacheStatCounts>(nameof(CacheStatCounts.Dirty)));
    }
}
