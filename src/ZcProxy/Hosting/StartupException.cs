using ZcProxy.Core.Configuration;

namespace ZcProxy.Hosting;

/// <summary>
/// A start that cannot happen. Its message is the one line the operator reads: what failed and where, like nginx's
/// "[emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)".
/// </summary>
internal sealed class StartupException : Exception
{
    public StartupException() { }

    public StartupException(string message) : base(message) { }

    public StartupException(string message, Exception innerException) : base(message, innerException) { }

    public StartupException(ConfigError error, Exception? innerException = null) : base(error.ToString(), innerException) { }
}
