using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Native;

namespace ZcProxy.Core.Output;

/// <summary>
/// The one place that decides how a byte range of a file goes to a client (cache hits, static files), as
/// nginx's output chain decides sendfile against directio: from the page cache with sendfile
/// (<see cref="FileRangeSource"/>), or read with O_DIRECT into aligned buffers (<see cref="DirectFileSource"/>), so a
/// big cold file neither pays for the page cache nor pushes hot small files out of it. Under
/// <see cref="DirectIoMode.Residency"/> the page cache is asked, with cachestat(2), how much of the range it holds
/// (docs/direct-io.md says why cachestat and what it costs); a range it lacks is brought back (re-admitted) when it is
/// hit cold repeatedly, or at once when an eighth of it or more is there, and the memory has free room for what is missing
/// (<see cref="PageCacheRoom"/>). Every decision is counted in
/// <c>zcproxy_file_sends_total{mechanism, reason}</c>.
/// </summary>
internal sealed partial class FileRangeSending
{
    /// <summary>
    /// A range counts as resident only when every one of its pages is in the page cache. A sendfile of a range that is
    /// merely mostly resident reads the missing pages back into the page cache: with an eighth allowed, each hit of a
    /// partly evicted 64 MiB entry pulled up to 8 MiB back in, under a memory limit that evicted other pages (the hot set's
    /// among them), which were read back in turn (pollution benchmark, docs/direct-io.md). So a partly resident range is
    /// sent by sendfile only when the missing pages fit in free memory.
    /// </summary>
    internal const double ResidentShare = 1.0;

    /// <summary>
    /// A range with at least this share of its pages cached was in memory lately and lost some of them (DAMON's pageout of
    /// idle regions, reclaim): with free room for the rest it goes by sendfile at its first hit. Not any share: a cold
    /// entry's hit reads its head first, and that read's readahead caches some pages of the body, so with "any page" every
    /// cold hit looked partly resident and a dropped entry was never read with O_DIRECT.
    /// </summary>
    internal const double PartlyResidentShare = 1.0 / 8;

    /// <summary>The cold hits (within <see cref="ColdHits.Window"/> of each other) after which a range may be re-admitted.</summary>
    internal const int ReadmitAfterColdHits = 2;

    private readonly ILogger<FileRangeSending> _log;
    private readonly Func<long, bool> _fits; // made once: a method group makes a delegate per use
    private readonly ColdHits _coldHits;
    private readonly RecentlyResident _recentlyResident = new();
    private readonly Dictionary<(BodyMechanism, FileSendReason), Counter> _sends = [];
    private volatile bool _cachestatMissing;

    public FileRangeSending(ProxyMetrics metrics, PageCacheRoom room, TimeProvider time, ILogger<FileRangeSending> log)
    {
        _log = log;
        _fits = room.Fits;
        _coldHits = new ColdHits(time);
        var family = metrics.Counters("zcproxy_file_sends_total",
            "File ranges (cache hits, static files) sent, by mechanism and by why it was chosen (DirectIo policy).", "mechanism", "reason");
        foreach (var (mechanism, reason) in new[]
        {
            (BodyMechanism.Sendfile, FileSendReason.Small), (BodyMechanism.Sendfile, FileSendReason.Resident),
            (BodyMechanism.DirectIo, FileSendReason.Cold), (BodyMechanism.DirectIo, FileSendReason.Threshold),
            (BodyMechanism.DirectIo, FileSendReason.ResidencyUnknown), (BodyMechanism.Sendfile, FileSendReason.Off),
            (BodyMechanism.Sendfile, FileSendReason.NoDirectIo), (BodyMechanism.Sendfile, FileSendReason.Readmitted),
        })
            _sends[(mechanism, reason)] = family.WithLabels(mechanism == BodyMechanism.Sendfile ? "sendfile" : "directio", ReasonLabel(reason));
    }

    /// <summary>
    /// The source for bytes [offset, offset+length) of an open file whose whole length is <paramref name="fileLength"/>
    /// (an O_DIRECT handle is opened anew from <paramref name="path"/> and must find the same length); the caller
    /// keeps <paramref name="file"/> and disposes the source. <paramref name="objectLength"/> is what the threshold rule
    /// compares (the whole body: a cache entry's, a static file's).
    /// </summary>
    public BodySource Open(SafeFileHandle file, string path, long fileLength, long offset, long length, long objectLength, DirectIoPolicy policy)
    {
        long now = Environment.TickCount64;
        var (mechanism, reason) = Choose(policy, length, objectLength, new FileQuestions(this, file, path, offset, length, now));
        if (reason == FileSendReason.Readmitted) _coldHits.Forget(path);
        if (mechanism == BodyMechanism.DirectIo)
        {
            if (DirectFileSource.TryOpen(path, fileLength, offset, length) is { } direct)
            {
                _sends[(mechanism, reason)].Increment();
                return direct;
            }
            reason = FileSendReason.NoDirectIo; // the file system refuses O_DIRECT (tmpfs), or the file changed under us
        }
        _sends[(BodyMechanism.Sendfile, reason)].Increment();
        bool resident = reason == FileSendReason.Resident;
        return new FileRangeSource(file, offset, length, withHead: length < FileRangeSource.SendfileFrom,
            seenResident: resident, seenAt: resident ? _recentlyResident.Since(file, offset, length, now) ?? now : 0);
    }

    /// <summary>The rule's questions about one open file's range: a struct, so asking them allocates nothing (no closures per hit).</summary>
    private readonly struct FileQuestions(FileRangeSending owner, SafeFileHandle file, string path, long offset, long length, long now) : IResidencyQuestions
    {
        public double? ResidentShare() => owner.ResidentShareOf(file, offset, length, now);

        public Readmission Readmission() => new(owner._coldHits.Note(path), owner._fits);

        public bool HasRoomFor(long bytes) => owner._fits(bytes);
    }

    /// <summary>
    /// The rule itself: <see cref="IResidencyQuestions.ResidentShare"/> is asked only under Residency and only for a range
    /// of at least the threshold; <see cref="IResidencyQuestions.Readmission"/> (which counts the hit as cold) only for a
    /// range not wholly resident.
    /// </summary>
    internal static (BodyMechanism Mechanism, FileSendReason Reason) Choose<TQuestions>(DirectIoPolicy policy, long length, long objectLength,
        TQuestions questions) where TQuestions : IResidencyQuestions
    {
        switch (policy.Mode)
        {
            case DirectIoMode.Off:
                return (BodyMechanism.Sendfile, FileSendReason.Off);
            case DirectIoMode.Threshold:
                return objectLength >= policy.Threshold ? (BodyMechanism.DirectIo, FileSendReason.Threshold) : (BodyMechanism.Sendfile, FileSendReason.Small);
            default:
                if (length < policy.Threshold) return (BodyMechanism.Sendfile, FileSendReason.Small);
                var share = questions.ResidentShare();
                if (share is null) return (BodyMechanism.DirectIo, FileSendReason.ResidencyUnknown);
                if (share >= ResidentShare) return (BodyMechanism.Sendfile, FileSendReason.Resident);
                // Partly in memory (an eighth or more): it was read or filled lately, and the kernel (DAMON's pageout of idle regions, reclaim) took
                // some of its pages. With free room for those, sendfile reads back only them, evicting nothing; with O_DIRECT
                // the whole range left the disk at a fraction of sendfile's speed and ~2x its CPU per byte, though most of it
                // was in memory (10 % of the bytes of the bench's resident 256 MiB hits, issue 14; docs/direct-io.md).
                if (share >= PartlyResidentShare && questions.HasRoomFor(MissingBytes(length, share.Value)))
                    return (BodyMechanism.Sendfile, FileSendReason.Readmitted);
                // Not in memory: O_DIRECT, so it pushes nothing out. Unless it keeps being asked for and the memory has free
                // room for all of it: then sendfile reads it back in, and its next hits find it resident (an entry paged out
                // once, by DAMON or a past squeeze, would otherwise stay on the disk for good while memory sits free).
                var r = questions.Readmission();
                return r.ColdHits >= ReadmitAfterColdHits && r.Fits(length)
                    ? (BodyMechanism.Sendfile, FileSendReason.Readmitted)
                    : (BodyMechanism.DirectIo, FileSendReason.Cold);
        }
    }

    /// <summary>The bytes of a range of <paramref name="length"/> that its resident <paramref name="share"/> leaves out, rounded up.</summary>
    internal static long MissingBytes(long length, double share) => (long)Math.Ceiling(length * (1 - share));

    /// <summary>Tests see each cachestat of a range the rule asks about: its offset and length.</summary>
    internal static Action<long, long>? ResidencyAsked;

    /// <summary>
    /// cachestat(2) over the range: one system call, no mapping, no side effect on the page cache; not asked again for a
    /// range of the same open file found wholly resident in the last <see cref="RecentlyResident.TrustForMs"/>. Null when
    /// the kernel cannot tell: before Linux 6.5 (ENOSYS, then never asked again), or EPERM on a file the proxy could not write.
    /// </summary>
    private double? ResidentShareOf(SafeFileHandle file, long offset, long length, long now)
    {
        if (_cachestatMissing) return null;
        if (_recentlyResident.Since(file, offset, length, now) is not null) return 1.0;
        ResidencyAsked?.Invoke(offset, length);
        var r = Syscalls.CachedPages(file, offset, length);
        if (r.Ok)
        {
            double share = (double)r.Bytes / Math.Max(1, Syscalls.PagesSpanned(offset, length));
            if (share >= ResidentShare) _recentlyResident.Note(file, offset, length, now);
            return share;
        }
        if (r.Errno == (int)Errno.ENOSYS && !_cachestatMissing)
        {
            _cachestatMissing = true;
            LogNoCachestat(_log);
        }
        return null;
    }

    private static string ReasonLabel(FileSendReason reason) => reason switch
    {
        FileSendReason.Small => "small",
        FileSendReason.Resident => "resident",
        FileSendReason.Cold => "cold",
        FileSendReason.Threshold => "threshold",
        FileSendReason.ResidencyUnknown => "residency_unknown",
        FileSendReason.Off => "off",
        FileSendReason.Readmitted => "readmitted",
        _ => "no_direct_io",
    };

    [LoggerMessage(EventId = 3010, Level = LogLevel.Warning, Message = "DirectIo \"residency\": this kernel has no cachestat(2) (Linux 6.5+), so residency cannot be known; large cold and hot files alike are read with O_DIRECT (the \"threshold\" rule)")]
    private static partial void LogNoCachestat(ILogger logger);
}

/// <summary>Why a file range went out the way it did (the reason label of zcproxy_file_sends_total).</summary>
internal enum FileSendReason
{
    /// <summary>Below DirectIoThreshold: sendfile.</summary>
    Small,
    /// <summary>Residency: at least the threshold, and in the page cache: sendfile.</summary>
    Resident,
    /// <summary>Residency: at least the threshold, not in the page cache: O_DIRECT.</summary>
    Cold,
    /// <summary>Threshold: at least the threshold: O_DIRECT.</summary>
    Threshold,
    /// <summary>Residency, but the kernel could not tell (no cachestat, EPERM): the threshold rule, O_DIRECT.</summary>
    ResidencyUnknown,
    /// <summary>DirectIo off: sendfile.</summary>
    Off,
    /// <summary>O_DIRECT was chosen but the file system refused it (tmpfs): sendfile.</summary>
    NoDirectIo,
    /// <summary>
    /// Residency: not wholly in the page cache, but either an eighth or more is and the memory has free room for the rest, or it
    /// was hit cold again lately and the memory has free room for all of it: sendfile brings it back.
    /// </summary>
    Readmitted,
}

/// <summary>
/// What re-admission knows of a range the page cache lacks: its cold hits lately, this one included
/// (<see cref="ColdHits"/>), and whether that many more bytes in the page cache leave the free-memory margin
/// (<see cref="PageCacheRoom.Fits"/>).
/// </summary>
internal readonly record struct Readmission(int ColdHits, Func<long, bool> Fits);

/// <summary>What the DirectIo rule (<see cref="FileRangeSending.Choose"/>) may ask about a range, and only when it must.</summary>
internal interface IResidencyQuestions
{
    /// <summary>The share of the range's pages in the page cache; null when the kernel cannot tell.</summary>
    double? ResidentShare();

    /// <summary>Counts this hit as cold and tells whether the range may be brought back into the page cache.</summary>
    Readmission Readmission();

    /// <summary>Whether that many more bytes in the page cache leave the free-memory margin (<see cref="PageCacheRoom.Fits"/>).</summary>
    bool HasRoomFor(long bytes);
}
