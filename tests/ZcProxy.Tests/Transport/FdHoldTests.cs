using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// A loop registration that holds its fd (<see cref="FdHold"/>): the loop thread's syscalls lease nothing, so the fd must
/// stay open until that thread drops the hold, whoever unregisters and closes it.
/// </summary>
public sealed class FdHoldTests
{
    [Fact]
    public async Task TheFdIsFree_OnlyOnTheLoopThread()
    {
        using var loop = new EventLoop(0);
        var (read, write) = Syscalls.CreatePipe();
        using (read) using (write)
        {
            var socket = loop.Register(read, holdFd: true);
            Assert.False(socket.Hold!.TryGetFd(out _));
            Assert.True(await OnLoopAsync(loop, () => socket.Hold.TryGetFd(out int fd) && fd == read.Fd));
            loop.Unregister(socket, fdStaysOpen: true); // off the loop: the loop thread drops the hold at its next turn
            await Poll.UntilAsync(async () => !await OnLoopAsync(loop, () => socket.Hold.TryGetFd(out int _)), "the loop thread to drop the hold");
        }
    }

    private static Task<bool> OnLoopAsync(EventLoop loop, Func<bool> check)
    {
        var result = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        loop.Post(_ => result.SetResult(check()), null);
        return result.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task ClosedOffTheLoop_TheFdStaysOpenUntilTheLoopThreadDropsIt()
    {
        using var loop = new EventLoop(0);
        var (read, write) = Syscalls.CreatePipe();
        using (write)
        {
            int fd = read.Fd;
            string identity = Identity(fd)!;
            var socket = loop.Register(read, holdFd: true);
            // The loop thread is busy (as in the middle of a syscall with the fd): the close must wait for it.
            using var busy = new ManualResetEventSlim();
            var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            loop.Post(_ => { running.SetResult(); busy.Wait(TimeSpan.FromSeconds(30)); }, null);
            await running.Task.WaitAsync(TimeSpan.FromSeconds(10));
            try
            {
                loop.Unregister(socket, fdStaysOpen: false);
                read.Dispose();
                Assert.Equal(identity, Identity(fd)); // the number is still this pipe's: nothing else can get it yet
            }
            finally { busy.Set(); }
            await Poll.UntilAsync(() => Identity(fd) != identity, "the loop thread to drop the hold and close the fd");
        }
    }

    [Fact]
    public void AfterTheLoopEnded_UnregisteringDropsTheHoldAtOnce()
    {
        var loop = new EventLoop(0);
        var (read, write) = Syscalls.CreatePipe();
        using (write)
        {
            int fd = read.Fd;
            string identity = Identity(fd)!;
            var socket = loop.Register(read, holdFd: true);
            loop.Dispose();
            loop.Unregister(socket, fdStaysOpen: false);
            read.Dispose();
            Assert.NotEqual(identity, Identity(fd));
        }
    }

    /// <summary>What the fd number refers to now ("pipe:[inode]"), or null when it is closed: a number reused meanwhile differs.</summary>
    private static string? Identity(int fd)
    {
        try { return new FileInfo($"/proc/self/fd/{fd}").LinkTarget; }
        catch (IOException) { return null; }
    }
}
