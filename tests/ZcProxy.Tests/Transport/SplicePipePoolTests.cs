using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;

namespace ZcProxy.Tests.Transport;

/// <summary>Splice pipes are leased per body from a bounded pool sized against the kernel's pipe limits.</summary>
public sealed class SplicePipePoolTests
{
    private const int Page = 4096;

    [Theory]
    [InlineData(1 << 20, 16384, 0, 1 << 20, 48)]       // the defaults: 3/4 of the 64 MiB soft quota in 1 MiB pipes
    [InlineData(1 << 20, 16384, 4096, 512 * 1024, 24)] // a hard limit below the soft one binds (12 MiB of budget)
    [InlineData(1 << 20, 1024, 0, 128 * 1024, 24)]     // a small quota: smaller pipes, so that at least 16 bodies splice at once
    [InlineData(1 << 20, 64, 0, 64 * 1024, 3)]         // never below the kernel's default pipe
    [InlineData(65536, 16384, 0, 65536, 768)]          // fs.pipe-max-size caps the size
    [InlineData(1 << 20, 0, 0, 1 << 20, 1024)]         // no quota at all: still bounded
    public void Budget_IsSizedAgainstTheKernelsPipeLimits(long pipeMaxSize, long softPages, long hardPages, int size, int max)
    {
        var budget = PipeBudget.For(pipeMaxSize, softPages, hardPages, Page);
        Assert.Equal((size, max), (budget.PipeSize, budget.MaxPipes));
    }

    [Fact]
    public void Lease_IsBounded_AndAPipeComesBackOnlyAfterACompleteTransfer()
    {
        var metrics = new ProxyMetrics();
        using var pool = new SplicePipePool(new PipeBudget(PipeBudget.KernelDefaultPipeSize, 2, "test"), metrics);
        var a = pool.TryLease();
        var b = pool.TryLease();
        Assert.NotNull(a);
        Assert.NotNull(b);
        Assert.True(a.Capacity >= PipeBudget.KernelDefaultPipeSize);
        Assert.Null(pool.TryLease()); // both exist: the third body is copied
        Assert.Equal(1, metrics.CounterValue("zcproxy_splice_pipe_shortages_total"));

        pool.Return(a, transferComplete: true);
        Assert.Equal((1, 1), (pool.Leased, pool.IdleCount));
        Assert.Same(a, pool.TryLease()); // the empty pipe is reused

        pool.Return(b, transferComplete: false); // may hold bytes of a broken body: closed
        Assert.True(b.IsClosed);
        a.Buffered = 10;
        pool.Return(a, transferComplete: true); // not empty: closed too
        Assert.True(a.IsClosed);
        Assert.Equal((0, 0), (pool.Leased, pool.IdleCount));
        Assert.NotNull(pool.TryLease());
    }

    [Fact]
    public void Lease_APipeTheKernelWouldNotSize_IsClosed_AndTheBodyCopied()
    {
        // Root may shrink a pipe below the default; an unprivileged user over its quota gets such a pipe unasked.
        var metrics = new ProxyMetrics();
        using var pool = new SplicePipePool(new PipeBudget(Page, 4, "test"), metrics);
        Assert.Null(pool.TryLease());
        Assert.Equal((0, 1L), (pool.Leased, metrics.CounterValue("zcproxy_splice_pipe_shortages_total")));
    }
}
