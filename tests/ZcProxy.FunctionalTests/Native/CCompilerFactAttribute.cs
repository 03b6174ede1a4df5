namespace ZcProxy.Tests.Native;

/// <summary>
/// A fact that needs a C compiler for one architecture (only to compile: nothing built is run): skipped, with the
/// reason, when that compiler is not on PATH. .ci/run installs gcc and gcc-aarch64-linux-gnu, so on CI these run.
/// </summary>
public sealed class CCompilerFactAttribute : FactAttribute
{
    public CCompilerFactAttribute(string compiler)
    {
        if (FindOnPath(compiler) is null)
            Skip = $"{compiler} is not on PATH (install it: apt-get install gcc gcc-aarch64-linux-gnu libc6-dev-arm64-cross)";
    }

    public static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, program)).FirstOrDefault(File.Exists);
}
