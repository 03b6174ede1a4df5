using System.Globalization;

namespace ZcProxy.Core.Transport;

/// <summary>
/// How big splice pipes are and how many may exist at once, sized against the kernel's pipe limits for the
/// process's user: fs.pipe-user-pages-soft (64 MiB by default; past it an unprivileged user's new pipes get 2 pages
/// and F_SETPIPE_SZ fails), fs.pipe-user-pages-hard (0: none), fs.pipe-max-size (the largest pipe an unprivileged
/// process may ask for). Three quarters of the quota are ours, in two pools of their own: half for HTTP bodies
/// (<see cref="BodyQuarters"/>, 1 MiB pipes), a quarter for relays (<see cref="RelayQuarters"/>: TCP streams and
/// upgraded connections, <see cref="DefaultRelayPipeSize"/>); the rest stays for the runtime's own pipes and other
/// processes of the same user. A small quota gets more, smaller pipes (never below the kernel's default of 64 KiB),
/// so that at least <see cref="MinPipes"/> transfers can be spliced at once. Root ignores the quota, but gets the same
/// budget: the numbers do not change with the user the proxy runs as. Relay pipes may also grow (<see cref="GrowSize"/>)
/// once their direction moved <see cref="GrowAfterBytes"/>: at most <see cref="MaxGrown"/> at once, so that the growth
/// fits in an eighth of the quota (<see cref="GrowthEighths"/>, half of the quarter left over) and never takes a pipe
/// from the many small streams the relay quarter is for.
/// </summary>
internal readonly record struct PipeBudget(int PipeSize, int MaxPipes, string Basis)
{
    /// <summary>The size a relay direction's pipe grows to (0 or at most <see cref="PipeSize"/>: pipes never grow).</summary>
    public int GrowSize { get; init; }
    /// <summary>How many pipes may be grown at once (the growth's share of the quota, ÷ what one growth adds).</summary>
    public int MaxGrown { get; init; }
    public bool CanGrow => GrowSize > PipeSize && MaxGrown > 0;

    public const int PreferredPipeSize = 1 << 20;
    /// <summary>
    /// Relays move both ways between two sockets that are often on one host: on loopback 256 KiB pipes gave the best
    /// throughput per CPU second of the proxy and its peers together (docs/transport.md, "Relay pipe size").
    /// </summary>
    public const int DefaultRelayPipeSize = 256 * 1024;
    /// <summary>
    /// A relay direction that moved <see cref="GrowAfterBytes"/> grows its pipe to this (ZeroCopy.RelayPipeGrowSize): a
    /// long transfer then costs the proxy as much less per byte as 1 MiB pipes did (docs/transport.md, "A relay pipe that grows").
    /// </summary>
    public const int DefaultRelayPipeGrowSize = 1 << 20;
    /// <summary>
    /// What a relay direction moves before its pipe grows: 16 full 256 KiB pipes, two loop turns. Requests, replies and
    /// handshakes of databases, MQTT or SMTP stay below it; a bulk transfer passes it within its first few milliseconds.
    /// </summary>
    public const long GrowAfterBytes = 4 << 20;
    public const int GrowthEighths = 1;
    /// <summary>The kernel's default pipe (16 pages): a pipe granted less is not worth splicing through.</summary>
    public const int KernelDefaultPipeSize = 64 * 1024;
    /// <summary>The largest pipe size the configuration accepts (the kernel caps unprivileged users at fs.pipe-max-size anyway).</summary>
    public const int MaxConfigurablePipeSize = 64 << 20;
    public const int MinPipes = 16;
    /// <summary>Without any quota: a bound all the same, as HAProxy's maxpipes.</summary>
    public const int MaxPipesWithoutQuota = 1024;
    public const int BodyQuarters = 2;
    public const int RelayQuarters = 1;

    /// <summary>The HTTP body pool's budget (response and request bodies).</summary>
    public static PipeBudget ForBodies() => FromKernel(PreferredPipeSize, BodyQuarters);

    /// <summary>
    /// The relay pool's budget: pipes of <paramref name="pipeSize"/> bytes (ZeroCopy.RelayPipeSize), growing to
    /// <paramref name="growSize"/> (ZeroCopy.RelayPipeGrowSize) after <see cref="GrowAfterBytes"/>.
    /// </summary>
    public static PipeBudget ForRelays(long pipeSize, long growSize = DefaultRelayPipeGrowSize) => FromKernel(pipeSize, RelayQuarters, growSize);

    private static PipeBudget FromKernel(long preferredSize, int quarters, long growSize = 0) => For(
        Read("/proc/sys/fs/pipe-max-size", PreferredPipeSize), Read("/proc/sys/fs/pipe-user-pages-soft", 16384),
        Read("/proc/sys/fs/pipe-user-pages-hard", 0), Environment.SystemPageSize, preferredSize, quarters, growSize);

    public static PipeBudget For(long pipeMaxSize, long softPages, long hardPages, int pageSize,
        long preferredSize = PreferredPipeSize, int quarters = BodyQuarters, long growSize = 0)
    {
        var budget = BaseFor(pipeMaxSize, softPages, hardPages, pageSize, preferredSize, quarters);
        long grown = Math.Min(growSize, pipeMaxSize);
        if (grown <= budget.PipeSize) return budget;
        long quotaPages = QuotaPages(softPages, hardPages);
        long maxGrown = quotaPages <= 0 ? budget.MaxPipes : quotaPages * pageSize / 8 * GrowthEighths / (grown - budget.PipeSize);
        return budget with { GrowSize = (int)grown, MaxGrown = (int)Math.Clamp(maxGrown, 0, budget.MaxPipes) };
    }

    private static long QuotaPages(long softPages, long hardPages)
        => softPages > 0 && hardPages > 0 ? Math.Min(softPages, hardPages) : Math.Max(softPages, hardPages);

    private static PipeBudget BaseFor(long pipeMaxSize, long softPages, long hardPages, int pageSize, long preferredSize, int quarters)
    {
        long quotaPages = QuotaPages(softPages, hardPages);
        var basis = string.Create(CultureInfo.InvariantCulture,
            $"{quarters}/4 of the quota; fs.pipe-max-size {pipeMaxSize}, fs.pipe-user-pages-soft {softPages}, fs.pipe-user-pages-hard {hardPages}, page size {pageSize}");
        long size = Math.Max(KernelDefaultPipeSize, Math.Min(preferredSize, pipeMaxSize));
        if (quotaPages <= 0) return new PipeBudget((int)size, MaxPipesWithoutQuota, basis);
        long budget = quotaPages * pageSize / 4 * quarters;
        while (size > KernelDefaultPipeSize && budget / size < MinPipes) size /= 2;
        return new PipeBudget((int)size, (int)Math.Clamp(budget / size, 1, MaxPipesWithoutQuota), basis);
    }

    private static long Read(string path, long fallback)
    {
        try { return long.Parse(File.ReadAllText(path).Trim(), CultureInfo.InvariantCulture); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or OverflowException) { return fallback; }
    }
}
