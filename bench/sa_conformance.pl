#!/usr/bin/perl
# sa_conformance.pl - SpamAssassin 4's verdict on each message listed on
# stdin (one path a line), the reference bench/sa-conformance compares
# moat's rule engine with: Debian's ruleset and .pre files, network tests
# off, Bayes on with an empty store (so SpamAssassin scores with set 0,
# as moat does without a trained classifier). Prints "PATH SCORE RULES"
# (the reported rules, comma-separated; "__" sub-rules left out).
#
#   perl sa_conformance.pl WORKDIR [SA_RULES] < list
use strict;
use warnings;
use Mail::SpamAssassin;

my ($dir, $rules) = @ARGV;
die "usage: $0 WORKDIR [SA_RULES] < list\n" unless defined $dir;
$rules //= '/usr/share/spamassassin';
mkdir "$dir/bayes";
open(my $up, '>', "$dir/user_prefs") or die "$dir/user_prefs: $!\n";
close($up);
my $sa = Mail::SpamAssassin->new({
	rules_filename => $rules,
	site_rules_filename => '/etc/spamassassin',
	userprefs_filename => "$dir/user_prefs",
	dont_copy_prefs => 1,
	local_tests_only => 1,
	home_dir_for_helpers => $dir,
	post_config_text => "bayes_path $dir/bayes/bayes\nuse_bayes 1\n" .
	    "bayes_auto_learn 0\n",
});
$sa->init(1);
while (my $p = <STDIN>) {
	chomp $p;
	open(my $f, '<', $p) or die "$p: $!\n";
	my $text = do { local $/; <$f> };
	close($f);
	my $msg = $sa->parse($text);
	my $st = $sa->check($msg);
	my @hits = grep { !/^__/ } split(/,/, $st->get_names_of_tests_hit());
	printf "%s %.3f %s\n", $p, $st->get_score(), join(',', @hits);
	$st->finish();
	$msg->finish();
}
$sa->finish();
