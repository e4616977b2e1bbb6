#!/usr/bin/perl
# sa_bayes_cv.pl - SpamAssassin's own Bayes on one cross-validation fold,
# the reference bench/bayes-cv compares moat's classifier with: learn the
# messages listed in TRAIN_SPAM and TRAIN_HAM into a fresh database under
# DIR, then print "PATH PROB" (or "PATH -" when SA does not vote) for each
# message listed in TEST. Only the Bayes plugin is loaded (one rule that
# calls check_bayes), network tests are off, bayes_min_*_num as given.
#
#   perl sa_bayes_cv.pl DIR TRAIN_SPAM TRAIN_HAM TEST [MIN_NUM]
#
# The lists are files with one message path a line.
use strict;
use warnings;
use Mail::SpamAssassin;

my ($dir, $tspam, $tham, $test, $min, $rules) = @ARGV;
die "usage: $0 DIR TRAIN_SPAM TRAIN_HAM TEST [MIN_NUM [SA_RULES]]\n"
    unless defined $test;
$min //= 200;
$rules //= '/usr/share/spamassassin';

# From the distribution's ruleset, what Bayes depends on: the TLD lists
# (URI parsing) and bayes_ignore_header, as SA would run with it.
my $extra = '';
for my $f (sort glob("$rules/*.cf")) {
	open(my $r, '<', $f) or next;
	while (<$r>) {
		$extra .= $_ if /^\s*(?:util_rb_\w+|bayes_ignore_header)\s/;
	}
	close($r);
}
mkdir "$dir/cf";
open(my $cf, '>', "$dir/cf/bayes.cf") or die "$dir/cf/bayes.cf: $!\n";
print $cf <<"CF";
loadplugin Mail::SpamAssassin::Plugin::Check
loadplugin Mail::SpamAssassin::Plugin::Bayes
use_bayes 1
use_learner 1
bayes_auto_learn 0
bayes_auto_expire 0
bayes_learn_to_journal 0
bayes_path $dir/bayes
bayes_min_spam_num $min
bayes_min_ham_num $min
body BAYES_ANY eval:check_bayes('0.00', '1.00')
score BAYES_ANY 0.001
$extra
CF
close($cf);
open(my $up, '>', "$dir/cf/user_prefs") or die;
close($up);

my $sa = Mail::SpamAssassin->new({
	rules_filename => "$dir/cf",
	site_rules_filename => "$dir/cf",
	userprefs_filename => "$dir/cf/user_prefs",
	dont_copy_prefs => 1,
	local_tests_only => 1,
	home_dir_for_helpers => $dir,
});
$sa->init(1);

sub slurp {
	my ($p) = @_;
	open(my $f, '<', $p) or die "$p: $!\n";
	local $/;
	my $t = <$f>;
	close($f);
	return $t;
}

sub list {
	my ($p) = @_;
	open(my $f, '<', $p) or die "$p: $!\n";
	my @l = map { chomp; $_ } <$f>;
	close($f);
	return @l;
}

my $n = 0;
for my $pair ([$tspam, 1], [$tham, 0]) {
	for my $p (list($pair->[0])) {
		my $msg = $sa->parse(slurp($p));
		my $st = $sa->learn($msg, undef, $pair->[1], 0);
		$n++ if $st->did_learn();
		$st->finish();
		$msg->finish();
	}
}
$sa->finish_learner();
print STDERR "sa: learned $n\n";

for my $p (list($test)) {
	my $msg = $sa->parse(slurp($p));
	my $status = $sa->check($msg);
	my $b = $status->{bayes_score};
	printf "%s %s\n", $p, defined $b ? sprintf("%.6f", $b) : '-';
	$status->finish();
	$msg->finish();
}
$sa->finish();
