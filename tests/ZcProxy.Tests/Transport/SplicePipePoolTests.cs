using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;

namespace ZcProxy.Tests.Transport;

/// <summary>Splice pipes are leased per body from a bounded pool sized against the kernel's pipe limits.</summary>
public sealed class SplicePipePoolTests
{
    private const int Page = 4096;

    [Theory]
    [InlineData(1 << 20, 16384, 0, 1 << 20, 32)]       // the defaults: half the 64 MiB soft quota in 1 MiB pipes
    [InlineData(1 << 20, 16384, 4096, 512 * 1024, 16)] // a hard limit below the soft one binds (8 MiB of budget)
    [InlineData(1 << 20, 1024, 0, 128 * 1024, 16)]     // a small quota: smaller pipes, so that at least 16 bodies splice at once
    [InlineData(1 << 20, 64, 0, 64 * 1024, 2)]         // never below the kernel's default pipe
    [InlineData(65536, 16384, 0, 65536, 512)]          // fs.pipe-max-size caps the size
    [InlineData(1 << 20, 0, 0, 1 << 20, 1024)]         // no quota at all: still bounded
    public void Budget_IsSizedAgainstTheKernelsPipeLimits(long pipeMaxSize, long softPages, long hardPages, int size, int max)
    {
        var budget = PipeBudget.For(pipeMaxSize, softPages, hardPages, Page);
        Assert.Equal((size, max), (budget.PipeSize, budget.MaxPipes));
    }

    [Theory]
    [InlineData(256 * 1024, 1 << 20, 16384, 256 * 1024, 64)]  // the defaults: a quarter of the 64 MiB quota in 256 KiB pipes
    [InlineData(1 << 20, 1 << 20, 16384, 1 << 20, 16)]        // ZeroCopy.RelayPipeSize 1 MiB
    [InlineData(4 << 20, 1 << 20, 16384, 1 << 20, 16)]        // capped at fs.pipe-max-size
    [InlineData(64 * 1024, 1 << 20, 16384, 64 * 1024, 256)]
    [InlineData(256 * 1024, 1 << 20, 2048, 128 * 1024, 16)]   // a small quota: smaller pipes, at least 16 of them
    public void RelayBudget_IsAQuarterOfTheQuota_InPipesOfTheConfiguredSize(long relayPipeSize, long pipeMaxSize, long softPages, int size, int max)
    {
        var budget = PipeBudget.For(pipeMaxSize, softPages, 0, Page, relayPipeSize, PipeBudget.RelayQuarters);
        Assert.Equal((size, max), (budget.PipeSize, budget.MaxPipes));
        var bodies = PipeBudget.For(pipeMaxSize, softPages, 0, Page);
        // Both pools at their limits stay within three quarters of the quota (the rest is the runtime's and other processes').
        Assert.True((long)budget.PipeSize * budget.MaxPipes + (long)bodies.PipeSize * bodies.MaxPipes <= softPages * Page / 4 * 3);
    }

    [Fact]
    public void RelayPool_HasMetricsOfItsOwn_BesideTheBodyPool()
    {
        var metrics = new ProxyMetrics();
        using var bodies = new SplicePipePool(new PipeBudget(PipeBudget.KernelDefaultPipeSize, 1, "test"), metrics);
        using var relays = new SplicePipePool(new PipeBudget(PipeBudget.KernelDefaultPipeSize, 1, "test"), metrics, use: SplicePipeUse.Relays);
        var relayPipe = relays.TryLease();
        Assert.NotNull(relayPipe);
        Assert.Null(relays.TryLease()); // the relay pool is spent ...
        Assert.NotNull(bodies.TryLease()); // ... the body pool is not
        Assert.Equal(1, metrics.CounterValue("zcproxy_relay_pipe_shortages_total"));
        Assert.Equal(0, metrics.CounterValue("zcproxy_splice_pipe_shortages_total"));
        Assert.Equal((1, 1), (relays.Leased, bodies.Leased));
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

    [Fact]
    public void Return_APipeTheKernelWouldNotResize_IsClosed_SoTheNextLeaseAsksForAFullSizedOne()
    {
        // A kernel that refuses F_SETPIPE_SZ (the user's pipe quota nearly used up) leaves a pipe at its default 64 KiB:
        // it serves the transfer it was made for, but must not stand in for a full-sized pipe afterwards.
        var asked = new List<int>();
        bool refuse = true;
        using var pool = new SplicePipePool(new PipeBudget(256 * 1024, 4, "test"), createPipe: size =>
        {
            asked.Add(size);
            return SplicePipe.Create(refuse ? PipeBudget.KernelDefaultPipeSize : size);
        });
        var small = pool.TryLease();
        Assert.NotNull(small);
        Assert.Equal(PipeBudget.KernelDefaultPipeSize, small.Capacity);
        pool.Return(small, transferComplete: true);
        Assert.True(small.IsClosed);
        Assert.Equal((0, 0), (pool.Leased, pool.IdleCount));

        refuse = false; // the quota has room again
        var full = pool.TryLease();
        Assert.NotNull(full);
        Assert.Equal(256 * 1024, full.Capacity);
        Assert.Equal([256 * 1024, 256 * 1024], asked);
        pool.Return(full, transferComplete: true);
        Assert.False(full.IsClosed); // a full-sized pipe is kept for the next transfer
        Assert.Same(full, pool.TryLease());
    }

    [Theory]
    [InlineData(256 * 1024, 1 << 20, 1 << 20, 16384, 1 << 20, 10)]  // the defaults: an eighth of the 64 MiB quota, 768 KiB per growth
    [InlineData(64 * 1024, 1 << 20, 1 << 20, 16384, 1 << 20, 8)]     // 960 KiB per growth
    [InlineData(256 * 1024, 4 << 20, 1 << 20, 16384, 1 << 20, 10)]   // capped at fs.pipe-max-size
    [InlineData(256 * 1024, 1 << 20, 256 * 1024, 16384, 0, 0)]       // fs.pipe-max-size 256 KiB: nothing to grow to
    [InlineData(1 << 20, 1 << 20, 1 << 20, 16384, 0, 0)]             // RelayPipeGrowSize at RelayPipeSize: pipes never grow
    [InlineData(1 << 20, 256 * 1024, 1 << 20, 16384, 0, 0)]          // ... nor below it
    public void RelayGrowth_FitsInAnEighthOfTheQuota_BesideBothPools(long relayPipeSize, long growSize, long pipeMaxSize, long softPages, int grownSize, int maxGrown)
    {
        var relays = PipeBudget.For(pipeMaxSize, softPages, 0, Page, relayPipeSize, PipeBudget.RelayQuarters, growSize);
        Assert.Equal(maxGrown > 0, relays.CanGrow);
        if (relays.CanGrow) Assert.Equal((grownSize, maxGrown), (relays.GrowSize, relays.MaxGrown));
        var bodies = PipeBudget.For(pipeMaxSize, softPages, 0, Page);
        Assert.False(bodies.CanGrow);
        // Growth never takes from the relays' own pipes (each keeps its full count) and all three stay within 7/8 of the quota.
        long growth = relays.CanGrow ? (long)(relays.GrowSize - relays.PipeSize) * relays.MaxGrown : 0;
        Assert.True((long)relays.PipeSize * relays.MaxPipes + (long)bodies.PipeSize * bodies.MaxPipes + growth <= softPages * Page / 8 * 7);
    }

    [Fact]
    public void TryGrow_WithinMaxGrown_AndTheReturnedPipeStaysGrownForTheNextLongLease()
    {
        var metrics = new ProxyMetrics();
        var budget = new PipeBudget(PipeBudget.KernelDefaultPipeSize, 3, "test") { GrowSize = 256 * 1024, MaxGrown = 1 };
        int resizes = 0;
        using var pool = new SplicePipePool(budget, metrics, use: SplicePipeUse.Relays,
            resizePipe: (pipe, size) => { resizes++; return pipe.TryResize(size); });
        var a = pool.TryLease()!;
        var b = pool.TryLease()!;
        Assert.True(pool.TryGrow(a));
        Assert.Equal((256 * 1024, 256 * 1024), (a.Capacity, a.KernelCapacity()));
        Assert.False(pool.TryGrow(b)); // one growth at once
        Assert.Equal((PipeBudget.KernelDefaultPipeSize, PipeBudget.KernelDefaultPipeSize), (b.Capacity, b.KernelCapacity()));
        Assert.Equal((1, 1L, 1L), (pool.Grown, metrics.CounterValue("zcproxy_relay_pipe_growths_total"), metrics.CounterValue("zcproxy_relay_pipe_growths_refused_total")));

        pool.Return(a, transferComplete: true); // empty: kept grown, its growth still counted
        Assert.False(a.IsClosed);
        Assert.Equal((256 * 1024, 256 * 1024), (a.Capacity, a.KernelCapacity()));
        Assert.Equal((1, 1), (pool.Grown, pool.IdleCount));
        Assert.False(pool.TryGrow(b)); // the growth is the idle pipe's

        var c = pool.TryLease(grown: true)!; // a long transfer's next lease: the grown pipe, no F_SETPIPE_SZ
        Assert.Same(a, c);
        Assert.Equal(1, resizes);
        pool.Return(c, transferComplete: true);
        var d = pool.TryLease()!; // any other lease leaves it for the long transfers while pipes of the pool's size can be had
        Assert.NotSame(a, d);
        Assert.Equal(PipeBudget.KernelDefaultPipeSize, d.Capacity);

        pool.Return(b, transferComplete: true);
        pool.Return(d, transferComplete: true);
        var e = pool.TryLease(grown: true)!;
        Assert.Same(a, e);
        e.Buffered = 10;
        pool.Return(e, transferComplete: true); // not empty: closed, and its growth freed
        Assert.True(e.IsClosed);
        Assert.Equal(0, pool.Grown);
        var f = pool.TryLease(grown: true)!; // no grown pipe idle: one of the pool's size, grown by the caller
        Assert.True(pool.TryGrow(f));
        pool.Return(f, transferComplete: false);
        Assert.True(f.IsClosed);
        Assert.Equal((0, 0), (pool.Grown, pool.Leased));
        Assert.Equal(2, resizes);
    }

    [Fact]
    public void AllPipesInUse_AnIdleGrownPipeServesAnyLease()
    {
        var budget = new PipeBudget(PipeBudget.KernelDefaultPipeSize, 2, "test") { GrowSize = 256 * 1024, MaxGrown = 1 };
        using var pool = new SplicePipePool(budget, use: SplicePipeUse.Relays);
        var a = pool.TryLease()!;
        var b = pool.TryLease()!;
        Assert.True(pool.TryGrow(a));
        pool.Return(a, transferComplete: true);
        Assert.Same(a, pool.TryLease()); // the budget's two pipes exist: the grown one rather than a copy
        Assert.Null(pool.TryLease());
        pool.Return(a, transferComplete: true);
        pool.Return(b, transferComplete: true);
        Assert.Equal((2, 0), (pool.IdleCount, pool.Leased));
    }

    [Fact]
    public void TryGrow_RefusedByTheKernel_LeavesThePipeAsItWas()
    {
        var metrics = new ProxyMetrics();
        var budget = new PipeBudget(PipeBudget.KernelDefaultPipeSize, 2, "test") { GrowSize = 1 << 20, MaxGrown = 2 };
        using var pool = new SplicePipePool(budget, metrics, use: SplicePipeUse.Relays,
            resizePipe: (pipe, size) => size <= PipeBudget.KernelDefaultPipeSize && pipe.TryResize(size));
        var pipe = pool.TryLease()!;
        Assert.False(pool.TryGrow(pipe));
        Assert.Equal((PipeBudget.KernelDefaultPipeSize, 0, 1L), (pipe.Capacity, pool.Grown, metrics.CounterValue("zcproxy_relay_pipe_growths_refused_total")));
        pool.Return(pipe, transferComplete: true);
        Assert.False(pipe.IsClosed);
        Assert.Equal(1, pool.IdleCount);
    }
}
