using ZcProxy.Core.Output;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Native;

namespace ZcProxy.Tests.Output;

/// <summary>
/// <see cref="LoopFileIo"/>'s opens: on an event-loop thread a path that does not resolve from the kernel's dentry cache is
/// opened on the thread pool (openat2 with RESOLVE_CACHED answered EAGAIN), one that does is opened inline. Which one ran
/// is seen by LoopFileIo's OpenedOnPool hook, not by whether the returned task was complete: on a busy machine the pool's
/// open can finish before the loop thread looks at its task (seen flaky under load). A name never
/// looked up in a new directory is not in the dentry cache (no disk read is needed to show it: the look-up rule is the
/// same one that keeps a cold directory block off the loop); once looked up, its (negative) dentry is.
/// </summary>
public sealed class LoopFileIoTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "zcproxy-loopio-" + Guid.NewGuid().ToString("N")[..12]);

    public LoopFileIoTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Runs <see cref="LoopFileIo.OpenAsync"/> on <paramref name="loop"/>'s thread: whether it stayed inline (was not
    /// handed to the pool), and its result.</summary>
    private static async Task<(bool Inline, int Errno)> OpenOnLoopAsync(EventLoop loop, string path, int flags)
    {
        var onPool = 0;
        void Record(string opened)
        {
            if (opened == path) Interlocked.Increment(ref onPool);
        }
        LoopFileIo.OpenedOnPool += Record;
        try
        {
            var started = new TaskCompletionSource<Task<(int, Microsoft.Win32.SafeHandles.SafeFileHandle?)>>(TaskCreationOptions.RunContinuationsAsynchronously);
            loop.Post(_ => started.SetResult(LoopFileIo.OpenAsync(path, flags).AsTask()), null);
            var task = await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
            var (errno, file) = await task.WaitAsync(TimeSpan.FromSeconds(10));
            file?.Dispose();
            return (Volatile.Read(ref onPool) == 0, errno);
        }
        finally
        {
            LoopFileIo.OpenedOnPool -= Record;
        }
    }

    [Fact]
    public async Task OnALoop_AnUncachedPathOpensOnThePool_ACachedOneInline()
    {
        using var loop = new EventLoop(0);
        var missing = Path.Combine(_dir, "never-looked-up");
        Assert.Equal((false, (int)Errno.ENOENT), await OpenOnLoopAsync(loop, missing, LinuxConstants.O_RDONLY));
        Assert.Equal((true, (int)Errno.ENOENT), await OpenOnLoopAsync(loop, missing, LinuxConstants.O_RDONLY)); // its negative dentry is cached now

        var present = Path.Combine(_dir, "present");
        await File.WriteAllTextAsync(present, "x"); // creating it leaves its dentry and inode cached
        Assert.Equal((true, 0), await OpenOnLoopAsync(loop, present, LinuxConstants.O_RDONLY | LinuxConstants.O_NONBLOCK));
    }

    [Fact]
    public async Task OnALoop_AnOpenOnThePool_ContinuesOnTheLoop()
    {
        using var loop = new EventLoop(0);
        var path = Path.Combine(_dir, "never-looked-up-again");
        var after = new TaskCompletionSource<(int Errno, bool OnTheLoop)>(TaskCreationOptions.RunContinuationsAsynchronously);
        loop.Post(_ => _ = OpenThenLookAsync(), null);
        Assert.Equal(((int)Errno.ENOENT, true), await after.Task.WaitAsync(TimeSpan.FromSeconds(10)));

        async Task OpenThenLookAsync()
        {
            var (errno, file) = await LoopFileIo.OpenAsync(path, LinuxConstants.O_RDONLY); // not in the dentry cache: on the pool
            file?.Dispose();
            after.SetResult((errno, loop.IsLoopThread));
        }
    }

    [Fact]
    public async Task OffTheLoops_OpensRunInline()
    {
        var open = LoopFileIo.OpenAsync(Path.Combine(_dir, "never-looked-up-either"), LinuxConstants.O_RDONLY);
        Assert.True(open.IsCompleted);
        Assert.Equal((int)Errno.ENOENT, (await open).Errno);
    }
}
