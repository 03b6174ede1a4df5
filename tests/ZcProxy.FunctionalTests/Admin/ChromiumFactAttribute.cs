namespace ZcProxy.Tests.Admin;

/// <summary>
/// A fact that drives a real headless Chromium: Debian's <c>chromium</c> package (its launcher <c>/usr/bin/chromium</c>),
/// or the executable <c>ZCPROXY_CHROMIUM</c> names. Skipped, with the reason and the fix, when there is none: .ci/run
/// installs the package when it is missing, so on CI these run.
/// </summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public const string DebianPath = "/usr/bin/chromium";

    public ChromiumFactAttribute()
    {
        if (SkipReason() is { } reason) Skip = reason;
    }

    /// <summary>ZCPROXY_CHROMIUM when set, else Debian's launcher.</summary>
    public static string ExecutablePath
        => Environment.GetEnvironmentVariable("ZCPROXY_CHROMIUM") is { Length: > 0 } path ? path : DebianPath;

    internal static string? SkipReason()
    {
        var path = ExecutablePath;
        if (!File.Exists(path))
            return $"no Chromium at {path}: apt-get install --no-install-recommends chromium (Debian 12's package; .ci/run installs it), or set ZCPROXY_CHROMIUM to a Chromium executable";
        if ((File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) == 0)
            return $"{path} is not executable";
        return null;
    }
}
